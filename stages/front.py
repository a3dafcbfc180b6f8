"""Stage front of sweep/dvc.yaml: collect the sweep's points into a table and draw the stability–plasticity front."""

import argparse
import json
from pathlib import Path

from cllab import cli

COLUMNS = ["method", "optimizer", "hidden_units", "lambda", "diverged", "val_acc_a", "val_acc_b", "test_acc_a",
           "test_acc_b"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=Path, required=True)
    parser.add_argument("--joint-metrics", type=Path, default=Path("metrics/headline/joint.json"),
                        help="the joint model's mean test accuracies (changes only when the joint model does)")
    parser.add_argument("--out-csv", type=Path, required=True)
    parser.add_argument("--out-png", type=Path, required=True)
    args = parser.parse_args()
    params = cli.load_params()
    p = params["plot"]
    from cllab import io, plots

    points = [json.loads(path.read_text()) for path in sorted(args.points.rglob("*.json"))]
    if not points:
        raise io.ArtifactError(f"{args.points}: no sweep points (run: dvc repro sweep/dvc.yaml)")
    points.sort(key=lambda q: (q["method"], q["optimizer"], q["hidden_units"], q["lambda"]))
    rows = [{c: q.get(c, "") for c in COLUMNS} | {"lambda": float(q["lambda"])} for q in points]  # 100 and 100.0 alike
    io.save_csv(args.out_csv, rows, COLUMNS, digits=4)
    joint = json.loads(args.joint_metrics.read_text())
    reference = {"acc_a": joint["A_after_B"], "acc_b": joint["B_after_B"]}
    default = (params["train_b"]["optimizer"]["name"], params["model"]["hidden_units"])  # the main experiment's: first
    io.write_bytes(args.out_png, plots.front(points, reference, (p["width_in"] * 1.5, p["height_in"] * 1.3), p["dpi"],
                                             default, params["sweep"]["seed"]))


if __name__ == "__main__":
    cli.run(main)
