"""Stage evaluate: collect the accuracies every training stage recorded (evals/<seed>/<model>.json, val and test on A
and B) into per-seed tables, and the mean with a 95 % t-interval over seeds per method and metric.

The DVC metrics are the headline only (metrics/headline/: per method and for the joint model, the test average
accuracy, A and B after B and forgetting, one file of means and one of interval half-widths); metrics/seeds/<seed>/
holds the same numbers per seed; metrics/{test,validation}.json and the CSVs hold everything (accuracy matrices,
paired differences to L2). Reads numbers only: no model is loaded, no TensorFlow is started."""

import argparse
import json
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evals-dir", type=Path, default=Path("evals"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    args = parser.parse_args()
    params = cli.load_params()
    seeds, methods = params["seeds"], params["methods"]
    from cllab import io, metrics, report

    def read(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise io.ArtifactError(f"{path}: missing (run dvc repro)") from None
        except ValueError:
            raise io.ArtifactError(f"{path}: not valid JSON") from None

    evals = {seed: {name: read(args.evals_dir / str(seed) / f"{name}.json") for name in ("theta_a", "joint", *methods)}
             for seed in seeds}
    for split, name in (("test", "test"), ("val", "validation")):
        reports = {}
        for seed in seeds:
            acc = {net_name: values[split] for net_name, values in evals[seed].items()}
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
            per_seed = metrics.per_seed_headline(rows)
            io.save_json_files(args.metrics_dir / "headline", metrics.headline_files(per_seed))  # these methods only
            io.save_json_files(args.metrics_dir / "seeds", metrics.per_seed_files(per_seed))
            for row in metrics.summary_rows(rows):
                print(f"{row['method']:>14}: " + ", ".join(
                    f"{name} {report.mean_pm(row[f'{c}_mean'], row[f'{c}_ci95'])}"
                    for c, name in (("acc_a_after_b", "A after B"), ("acc_b_after_b", "B after B"),
                                    ("average_accuracy", "average"))))


if __name__ == "__main__":
    cli.run(main)
