"""Stage train_b@<seed>-<method>: start from θ_A, train on task B with the penalty λ/2·Σ Ω(θ−θ_A)², Ω from the
method's anchor file (none: no penalty)."""

import argparse
from pathlib import Path

from cllab import cli
from cllab import methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--anchor", type=Path, required=True, help="θ_A with the method's importance Ω")
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--data-b", type=Path, default=Path("data/prepared/task_b.npz"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--curve", type=Path, required=True, help="CSV: test accuracy on A and B per epoch")
    parser.add_argument("--live-dir", type=Path, required=True, help="DVCLive directory for per-epoch curves")
    parser.add_argument("--eval", type=Path, required=True, help="JSON: val and test accuracy on A and B (for evaluate)")
    args = parser.parse_args()
    params = cli.load_params()
    cfg = params["train_b"]
    if args.method not in methods.names("two_task"):  # not params["methods"]: that list is the matrix, not an input
        raise SystemExit(f"error: --method {args.method!r} is not one of {', '.join(methods.names('two_task'))}")
    strength = cfg[args.method]["lambda"]
    cli.start(params, args.seed)
    from cllab import data, io, model, training

    net = model.load_penalized(args.anchor, strength)
    model.compile_model(net, cfg["optimizer"]["name"], cfg["optimizer"]["learning_rate"])
    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    task_b = io.load_npz(args.data_b, required=data.task_arrays_names())
    curve = training.TaskAccuracyCurve(
        {"a": (task_a["x_test"], task_a["y_test"]), "b": (task_b["x_test"], task_b["y_test"])}
    )
    with io.atomic_dir(args.live_dir) as live_tmp:  # no half-written curves if training fails
        training.fit(
            net, task_b["x_train"], task_b["y_train"], epochs=cfg["epochs"], batch_size=cfg["batch_size"],
            validation=(task_b["x_val"], task_b["y_val"]),
            callbacks=[curve, training.LiveEpochs(live_tmp, curve)],
            context=f"train_b@{args.seed}-{args.method} (lambda={strength:g})",
        )
    model.save_model(args.out, net, model.read_config(args.anchor))
    io.save_csv(args.curve, curve.rows, ["epoch", "acc_a", "acc_b"])
    io.save_json(args.eval, model.task_accuracies(net, {"a": task_a, "b": task_b}), digits=12)


if __name__ == "__main__":
    cli.run(main)
