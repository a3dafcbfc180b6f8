"""Stage point@… of sweep/dvc.yaml: one point of the stability–plasticity front: train B from θ_A with one method,
λ and optimizer; record validation and test accuracy on A and B (or that training diverged)."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=cli.seed_arg, required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--lambda", dest="strength", type=float, required=True)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--anchor", type=Path, required=True)
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--data-b", type=Path, default=Path("data/prepared/task_b.npz"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = cli.load_params()
    cfg = params["train_b"]
    cli.start(params, args.seed)
    from cllab import data, io, model, training

    net = model.load_penalized(args.anchor, args.strength)
    model.compile_model(net, args.optimizer, args.learning_rate)
    tasks = {t: io.load_npz(p, required=data.task_arrays_names()) for t, p in (("a", args.data_a), ("b", args.data_b))}
    point = {
        "method": args.method, "lambda": args.strength, "optimizer": args.optimizer,
        "learning_rate": args.learning_rate, "hidden_units": model.read_config(args.anchor).hidden_units,
    }
    try:
        training.fit(net, tasks["b"]["x_train"], tasks["b"]["y_train"], epochs=cfg["epochs"],
                     batch_size=cfg["batch_size"], context=f"{args.method} lambda={args.strength:g}")
        point["diverged"] = False
        for split in ("val", "test"):
            for t, arrays in tasks.items():
                point[f"{split}_acc_{t}"] = model.accuracy(net, arrays[f"x_{split}"], arrays[f"y_{split}"])
    except training.NonFiniteLossError as err:  # a diverged point is a result of the sweep, not a failure
        print(f"diverged: {err}")
        point["diverged"] = True
    io.save_json(args.out, point)


if __name__ == "__main__":
    cli.run(main)
