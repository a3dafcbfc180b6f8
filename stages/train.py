"""Stages train_a@<seed> and train_joint@<seed>: train the MLP from scratch on task A (recording SI's path integral),
or on A and B together (the multi-task upper bound)."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=["a", "joint"], required=True)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--data-b", type=Path, default=Path("data/prepared/task_b.npz"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live-dir", type=Path, required=True, help="DVCLive directory for per-epoch curves")
    parser.add_argument("--eval", type=Path, required=True, help="JSON: val and test accuracy on A and B (for evaluate)")
    parser.add_argument("--hidden-units", type=int, help="override model.hidden_units (the λ sweep's wide model)")
    args = parser.parse_args()
    params = cli.load_params()
    section = "train_a" if args.task == "a" else "train_joint"
    cfg = params[section]
    cli.start(params, args.seed)
    from cllab import data, io, model, training

    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    task_b = io.load_npz(args.data_b, required=data.task_arrays_names())  # θ_A on B too: the accuracy matrix
    if args.task == "a":
        train, val = (task_a["x_train"], task_a["y_train"]), (task_a["x_val"], task_a["y_val"])
    else:
        train, val = data.joint(task_a, task_b, "train"), data.joint(task_a, task_b, "val")
    config = model.ModelConfig(**{**params["model"], **({"hidden_units": args.hidden_units} if args.hidden_units else {})})
    net = model.build_model(config, track_path_integral=args.task == "a")
    model.compile_model(net, cfg["optimizer"]["name"], cfg["optimizer"]["learning_rate"])
    start = model.get_weights(net)
    with io.atomic_dir(args.live_dir) as live_tmp:  # no half-written curves if training fails
        training.fit(
            net, *train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], validation=val,
            callbacks=[training.LiveEpochs(live_tmp)], context=f"{section}@{args.seed}",
        )
    extras = {}
    if args.task == "a":  # SI's raw ingredients; its importance (with ξ) is made by train_b (stages/train_b.py)
        extras.update({model.SI_OMEGA_PREFIX + k: v for k, v in net.path_integral_values().items()})
        extras.update({model.SI_START_PREFIX + k: v for k, v in start.items()})
    model.save_model(args.out, net, config, extras=extras)
    io.save_json(args.eval, model.task_accuracies(net, {"a": task_a, "b": task_b}), digits=12)


if __name__ == "__main__":
    cli.run(main)
