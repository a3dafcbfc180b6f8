"""Stage evaluate: test (and validation) accuracy of every model of every seed on A and B -> per-seed tables, and the
mean with a 95 % t-interval over seeds per method and metric (metrics/*.json, DVC metrics)."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data-a", type=Path, default=Path("data/prepared/task_a.npz"))
    parser.add_argument("--data-b", type=Path, default=Path("data/prepared/task_b.npz"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    args = parser.parse_args()
    params = cli.load_params()
    batch_size = params["evaluate"]["batch_size"]
    seeds, methods = params["seeds"], params["methods"]
    cli.start(params, seeds[0])
    from cllab import data, io, metrics, model

    tasks = {
        "a": io.load_npz(args.data_a, required=data.task_arrays_names()),
        "b": io.load_npz(args.data_b, required=data.task_arrays_names()),
    }
    for split, name in (("test", "test"), ("val", "validation")):
        reports = {}
        for seed in seeds:
            folder = args.models_dir / str(seed)
            paths = {"theta_a": folder / "theta_a.npz", "joint": folder / "joint.npz"}
            paths.update({m: folder / "theta_b" / f"{m}.npz" for m in methods})
            acc = {}
            for net_name, path in paths.items():
                net = model.load_model(path)
                acc[net_name] = {t: model.accuracy(net, a[f"x_{split}"], a[f"y_{split}"], batch_size) for t, a in tasks.items()}
            reports[seed] = {
                "methods": {m: metrics.method_report(acc["theta_a"], acc[m]) for m in methods},
                "joint": metrics.joint_report(acc["joint"]),
            }
        summary = metrics.aggregate(list(reports.values()))
        rows = metrics.per_seed_rows(reports)
        if "l2" in methods:
            summary["paired_vs_l2"] = metrics.paired_differences(rows, baseline="l2")
        io.save_json(args.metrics_dir / f"{name}.json", {**summary, "seeds": len(seeds)})
        io.save_csv(args.metrics_dir / f"{name}_per_seed.csv", rows, metrics.PER_SEED_COLUMNS)
        io.save_csv(args.metrics_dir / f"{name}.csv", metrics.summary_rows(rows), metrics.SUMMARY_COLUMNS)
        if split == "test":
            for row in metrics.summary_rows(rows):
                print(f"{row['method']:>14}: A after B {row['acc_a_after_b_mean']:.3f} ± {row['acc_a_after_b_ci95']:.3f}, "
                      f"B after B {row['acc_b_after_b_mean']:.3f} ± {row['acc_b_after_b_ci95']:.3f}, "
                      f"average {row['average_accuracy_mean']:.3f} ± {row['average_accuracy_ci95']:.3f}")


if __name__ == "__main__":
    cli.run(main)
