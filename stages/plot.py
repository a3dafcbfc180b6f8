"""Stage plot: figures (accuracy bars, forgetting curves, Fisher heat-map), curves for `dvc plots`, and report.md."""

import argparse
import json
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, default=Path("metrics/test.csv"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/test.json"))
    parser.add_argument("--curves-dir", type=Path, default=Path("plots/curves"))
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--out-dir", type=Path, default=Path("plots"))
    parser.add_argument("--report", type=Path, default=Path("report.md"))
    parser.add_argument("--provenance", type=Path, default=Path("provenance.json"), help="shown at the report's end")
    args = parser.parse_args()
    params = cli.load_params()
    p, seeds, methods = params["plot"], params["seeds"], params["methods"]
    from cllab import checkpoint, io, plots, report

    size, dpi = (p["width_in"], p["height_in"]), p["dpi"]
    rows = io.load_csv(args.table)
    joint = next(r for r in rows if r["method"] == "joint")
    curves = {m: {s: io.load_csv(args.curves_dir / str(s) / f"{m}.csv") for s in seeds} for m in methods}
    io.write_bytes(args.out_dir / "accuracy.png", plots.accuracy_bars(rows, size, dpi))
    io.write_bytes(args.out_dir / "forgetting.png", plots.forgetting_curves(curves, joint, size, dpi))
    figures = {
        "Accuracy after training B": "plots/accuracy.png",
        "Accuracy on A while training B": "plots/forgetting.png",
    }
    fisher_methods = [m for m in methods if m.startswith("ewc")]
    if fisher_methods:
        anchor = args.models_dir / str(seeds[0]) / "anchors" / f"{fisher_methods[0]}.npz"
        first = checkpoint.load_importance(anchor)["hidden/kernel"]
        title = f"Which input pixels matter for task A: Fisher of θ_A ({plots.label(fisher_methods[0])}, seed {seeds[0]})"
        io.write_bytes(args.out_dir / "fisher_heatmap.png", plots.importance_heatmap(first, title, size, dpi))
        figures["Fisher information of the first layer, per input pixel"] = "plots/fisher_heatmap.png"
    # the λ sweep is an on-demand pipeline of its own (sweep/dvc.yaml); the report links its figure, not a dependency
    figures["Stability–plasticity front (λ sweep, seed 0: `dvc repro sweep/dvc.yaml`)"] = "plots/front.png"
    # mean curves in wide form, for `dvc plots show` (one column per method)
    for column in ("acc_a", "acc_b"):
        epochs = [r["epoch"] for r in curves[methods[0]][seeds[0]]]
        table = [{"epoch": int(e)} for e in epochs]
        for m in methods:
            means = plots.mean_curves(curves[m], column)[1].mean(axis=0)
            for row, value in zip(table, means):
                row[m] = float(value)
        io.save_csv(args.out_dir / f"forgetting_{column}.csv", table, ["epoch", *methods])
    lambdas = {m: params["train_b"][m]["lambda"] for m in methods}
    paired = json.loads(args.metrics.read_text()).get("paired_vs_l2")
    made_on = json.loads(args.provenance.read_text()) if args.provenance.exists() else None
    io.write_bytes(args.report, report.markdown(rows, lambdas, seeds, figures, paired, made_on).encode())


if __name__ == "__main__":
    cli.run(main)
