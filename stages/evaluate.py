"""Stage evaluate: test (and validation) accuracy of every model on A and B -> metrics JSON and a tidy CSV table."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--data-b", type=Path, default=Path("data/prepared/task_b.npz"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    args = parser.parse_args()
    params = cli.load_params()
    batch_size = params["evaluate"]["batch_size"]
    cli.start(params)
    from cllab import data, io, metrics, model

    tasks = {
        "a": io.load_npz(args.data_a, required=data.task_arrays_names()),
        "b": io.load_npz(args.data_b, required=data.task_arrays_names()),
    }
    paths = {"theta_a": args.models_dir / "theta_a.npz", "joint": args.models_dir / "joint.npz"}
    paths.update({m: args.models_dir / "theta_b" / f"{m}.npz" for m in args.methods})
    nets = {name: model.load_model(path) for name, path in paths.items()}
    for split, name in (("test", "test"), ("val", "validation")):
        acc = {
            net_name: {t: model.accuracy(net, arrays[f"x_{split}"], arrays[f"y_{split}"], batch_size) for t, arrays in tasks.items()}
            for net_name, net in nets.items()
        }
        report = {
            "methods": {m: metrics.method_report(acc["theta_a"], acc[m]) for m in args.methods},
            "joint": metrics.joint_report(acc["joint"]),
        }
        io.save_json(args.metrics_dir / f"{name}.json", report)
        io.save_csv(args.metrics_dir / f"{name}.csv", metrics.table_rows(report), metrics.TABLE_COLUMNS)
        if split == "test":
            print(io.csv_text(metrics.table_rows(report), metrics.TABLE_COLUMNS, digits=4))


if __name__ == "__main__":
    cli.run(main)
