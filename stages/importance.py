"""Stage importance@<seed>: for each method, θ_A with its importance Ω (none, ones, Fisher of each kind, SI, MAS)
in one anchor file per method, the only file train_b@<seed>-<method> starts from."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--theta-a", type=Path, required=True)
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    params = cli.load_params()
    cli.start(params, args.seed)
    import numpy as np

    from cllab import data, importance, io, model

    net = model.load_model(args.theta_a)
    config = model.read_config(args.theta_a)
    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    path_integral = model.load_extras(args.theta_a, model.SI_OMEGA_PREFIX)
    start = model.load_extras(args.theta_a, model.SI_START_PREFIX)

    def subset(count):
        x, y = task_a["x_train"], task_a["y_train"]
        if count == "all" or count >= len(y):
            return x, y
        rows = np.sort(np.random.default_rng(args.seed).permutation(len(y))[:count])
        return x[rows], y[rows]

    fisher_x, fisher_y = subset(params["fisher"]["num_examples"])
    mas_x, _ = subset(params["mas"]["num_examples"])
    for method in params["methods"]:
        omega = importance.method_importance(
            method, net, mas_x if method == "mas" else fisher_x, fisher_y, params["fisher"]["kind"],
            params["si"]["xi"], path_integral, start, seed=args.seed, batch_size=params["fisher"]["batch_size"],
        )
        model.save_model(args.out_dir / f"{method}.npz", net, config,
                         extras=None if omega is None else model.importance_extras(omega))
        if omega is not None:
            stats = ", ".join(f"{name} max {values.max():.2e}" for name, values in omega.items())
            print(f"seed {args.seed} {method}: {stats}")


if __name__ == "__main__":
    cli.run(main)
