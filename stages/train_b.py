"""Stage train_b@<seed>-<method>: make the method's anchor from θ_A (θ_A with its importance Ω, cllab/methods/<method>.py
says how; none: no Ω), then start from it and train on task B with the penalty λ/2·Σ Ω(θ−θ_A)².

The anchor is made here, not by a stage of its own, so that a method's anchor depends on that method's module alone
(a new method makes its own anchors and reruns no other method's) and costs no extra process: Ω takes ~1 s, a
process ~4 s of TensorFlow start-up. It is written as one of the stage's outputs (models/<seed>/anchors/<method>.npz,
the bytes stages/importance.py used to write) and training starts from that file, as it did."""

import argparse
from pathlib import Path

from cllab import cli
from cllab import methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--theta-a", type=Path, required=True, help="θ_A (with SI's path integral) from train_a")
    parser.add_argument("--anchor", type=Path, required=True, help="written: θ_A with the method's importance Ω")
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--data-b", type=Path, default=Path("data/prepared/task_b.npz"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--curve", type=Path, required=True, help="CSV: test accuracy on A and B per epoch")
    parser.add_argument("--live-dir", type=Path, required=True, help="DVCLive directory for per-epoch curves")
    parser.add_argument("--eval", type=Path, required=True, help="JSON: val and test accuracy on A and B (for evaluate)")
    args = parser.parse_args()
    params = cli.load_params()
    cfg, runtime = params["train_b"], params["runtime"]
    if args.method not in methods.names("two_task"):  # not params["methods"]: that list is the matrix, not an input
        raise SystemExit(f"error: --method {args.method!r} is not one of {', '.join(methods.names('two_task'))}")
    strength = cfg[args.method]["lambda"]
    cli.start(params, args.seed)
    from cllab import data, importance, io, model, runtime as runtime_lib, training

    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    task_b = io.load_npz(args.data_b, required=data.task_arrays_names())
    theta_a = model.load_model(args.theta_a)
    source = importance.Source(
        theta_a, task_a["x_train"], task_a["y_train"],
        path_integral=model.load_extras(args.theta_a, model.SI_OMEGA_PREFIX),
        start=model.load_extras(args.theta_a, model.SI_START_PREFIX), seed=args.seed,
    )
    omega = importance.method_importance(args.method, source, methods.settings_for(args.method, params["importance"]))
    model.save_model(args.anchor, theta_a, model.read_config(args.theta_a),
                     extras=None if omega is None else model.importance_extras(omega))
    if omega is not None:
        print(f"seed {args.seed} {args.method}: " + ", ".join(f"{w} max {v.max():.2e}" for w, v in omega.items()))

    # Training must draw from the seeded generators as it did in a process of its own: loading θ_A drew from them
    # (Keras seeds every new layer, dropout's too, from the global generator); without this θ_B's bytes differ
    runtime_lib.set_determinism(args.seed, runtime["threads"], runtime["precision"])
    net = model.load_penalized(args.anchor, strength)
    model.compile_model(net, cfg["optimizer"]["name"], cfg["optimizer"]["learning_rate"])
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
