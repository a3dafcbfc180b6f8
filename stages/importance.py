"""Stage importance@<seed>: θ_A with the importance Ω of every method in `methods` (cllab/methods.py says how each
Ω is made), one anchor file per method in one directory, the only file train_b@<seed>-<method> starts from.

One process for all of them: TensorFlow's start-up (~4 s) costs more than any one Ω (~1 s). A change of `methods` or
of any `importance.*` setting reruns this stage, but only the anchors that change differ in bytes, so only their
train_b stages rerun downstream. An unknown method in `methods` stops here, with the project's one-line error,
before any train_b stage looks for its anchor."""

import argparse
from pathlib import Path

from cllab import cli
from cllab import methods as methods_lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--theta-a", type=Path, required=True)
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    params = cli.load_params()
    names = [m for m in params["methods"] if methods_lib.get(m).stage == "importance"]  # the anchors made here
    cli.start(params, args.seed)
    from cllab import data, importance, io, model

    net = model.load_model(args.theta_a)
    config = model.read_config(args.theta_a)
    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    source = importance.Source(
        net, task_a["x_train"], task_a["y_train"], path_integral=model.load_extras(args.theta_a, model.SI_OMEGA_PREFIX),
        start=model.load_extras(args.theta_a, model.SI_START_PREFIX), seed=args.seed,
    )
    with io.atomic_dir(args.out_dir) as tmp:  # all anchors or none
        for name in names:
            omega = importance.method_importance(name, source, methods_lib.settings_for(name, params["importance"]))
            model.save_model(tmp / f"{name}.npz", net, config,
                             extras=None if omega is None else model.importance_extras(omega))
            if omega is not None:
                stats = ", ".join(f"{weight} max {values.max():.2e}" for weight, values in omega.items())
                print(f"seed {args.seed} {name}: {stats}")


if __name__ == "__main__":
    cli.run(main)
