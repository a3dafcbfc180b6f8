"""Stage importance@<seed>: θ_A with the importance Ω of every method except MAS (its own stage), one anchor file per
method, the only file train_b@<seed>-<method> starts from: none (no Ω), l2 (Ω = 1), ewc (Fisher of `fisher.kind`),
ewc_sampled and ewc_empirical (Fisher of that kind), si (train_a's path integral with ξ).

One process for all of them: TensorFlow's start-up (~4 s) costs more than the Fisher (~1 s) or SI (numpy). A change of
`fisher.kind` or `si.xi` reruns this stage, but only the anchors that change differ in bytes, so only their train_b
stages rerun downstream."""

import argparse
from pathlib import Path

from cllab import cli

METHODS = ("none", "l2", "ewc", "ewc_sampled", "ewc_empirical", "si")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--theta-a", type=Path, required=True)
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    params = cli.load_params()
    cli.start(params, args.seed)
    from cllab import data, importance, io, model

    net = model.load_model(args.theta_a)
    config = model.read_config(args.theta_a)
    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    path_integral = model.load_extras(args.theta_a, model.SI_OMEGA_PREFIX)
    start = model.load_extras(args.theta_a, model.SI_START_PREFIX)
    x, y = data.subset(task_a["x_train"], task_a["y_train"], params["fisher"]["num_examples"], args.seed)
    for method in METHODS:
        omega = importance.method_importance(
            method, net, x, y, params["fisher"]["kind"], params["si"]["xi"], path_integral, start, seed=args.seed,
            batch_size=params["fisher"]["batch_size"],
        )
        model.save_model(args.out_dir / f"{method}.npz", net, config,
                         extras=None if omega is None else model.importance_extras(omega))
        if omega is not None:
            stats = ", ".join(f"{name} max {values.max():.2e}" for name, values in omega.items())
            print(f"seed {args.seed} {method}: {stats}")


if __name__ == "__main__":
    cli.run(main)
