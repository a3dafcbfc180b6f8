"""Stage fisher: diagonal Fisher information of θ_A on task A's training inputs, saved with θ_A (EWC's anchor)."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--theta-a", type=Path, default=Path("models/theta_a.npz"))
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = cli.load_params()
    cfg = params["fisher"]
    cli.start(params)
    import numpy as np

    from cllab import data, importance, io, model

    net = model.load_model(args.theta_a)
    task_a = io.load_npz(args.data_a, required=data.task_arrays_names())
    x, y = task_a["x_train"], task_a["y_train"]
    if cfg["num_examples"] != "all" and cfg["num_examples"] < len(y):
        rows = np.sort(np.random.default_rng(params["seed"]).permutation(len(y))[: cfg["num_examples"]])
        x, y = x[rows], y[rows]
    fisher = importance.fisher_diagonal(net, x, cfg["kind"], labels=y, seed=params["seed"], batch_size=cfg["batch_size"])
    model.save_model(args.out, net, model.read_config(args.theta_a), importance=fisher)
    for name, values in fisher.items():
        print(f"Fisher ({cfg['kind']}, {len(y)} examples) {name}: mean {values.mean():.3e}, max {values.max():.3e}")


if __name__ == "__main__":
    cli.run(main)
