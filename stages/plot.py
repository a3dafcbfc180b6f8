"""Stage plot: figures (accuracy bars, forgetting curves, Fisher heat-map), report.md, and the long-form tables the
interactive `dvc plots` read (one row per epoch and method, with its readable name and colour from cllab/methods/,
so the plots follow `methods` without naming any): plots/forgetting.csv (test accuracy on A and B while training B,
epoch 0 = θ_A) and plots/training_b.csv (the terms of the objective per epoch, from DVCLive), means over seeds."""

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
    parser.add_argument("--live-dir", type=Path, default=Path("dvclive"))
    parser.add_argument("--out-dir", type=Path, default=Path("plots"))
    parser.add_argument("--report", type=Path, default=Path("report.md"))
    parser.add_argument("--provenance", type=Path, default=Path("provenance.json"), help="shown at the report's end")
    args = parser.parse_args()
    params = cli.load_params()
    p, seeds, methods = params["plot"], params["seeds"], params["methods"]
    import numpy as np

    from cllab import checkpoint, io, methods as methods_lib, plots, report

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
    # the heat map shows the first layer's Ω of the first method in `methods` whose Ω is a Fisher, else of the first
    # penalised one; always written (it is a declared output), saying so when no method has an Ω
    penalised = [m for m in methods if methods_lib.get(m).omega is not None]
    shown = ([m for m in penalised if methods_lib.get(m).omega == "omega_fisher"] + penalised + [None])[0]
    if shown is None:
        first, title = np.zeros((28 * 28, 1)), "No method in `methods` has an importance Ω (fine-tuning only)"
    else:
        first = checkpoint.load_importance(args.models_dir / str(seeds[0]) / "anchors" / f"{shown}.npz")["hidden/kernel"]
        what = "Fisher" if methods_lib.get(shown).omega == "omega_fisher" else "importance Ω"
        title = f"Which input pixels matter for task A: {what} of θ_A ({methods_lib.label(shown)}, seed {seeds[0]})"
    io.write_bytes(args.out_dir / "fisher_heatmap.png", plots.importance_heatmap(first, title, size, dpi))
    figures["Importance of the first layer's weights for task A, per input pixel"] = "plots/fisher_heatmap.png"
    # the λ sweep is an on-demand pipeline of its own (sweep/dvc.yaml); the report links its figure, not a dependency
    figures["Stability–plasticity front (λ sweep, seed 0: `dvc repro sweep/dvc.yaml`)"] = "plots/front.png"
    # long-form tables for `dvc plots`: one row per (epoch, method), means over seeds
    table = plots.forgetting_table(curves)
    io.save_csv(args.out_dir / "forgetting.csv", table, [*plots.TABLE_KEYS, "acc_a", "acc_b"])
    wanted = [*plots.TRAINING_TERMS.values(), "train/loss", "eval/loss"]
    logs = {m: [{name: io.load_live_metric(args.live_dir / str(s) / f"train_b_{m}", name) for name in wanted}
                for s in seeds] for m in methods}
    io.save_csv(args.out_dir / "training_b.csv", plots.training_table(logs), [*plots.TABLE_KEYS, *plots.TRAINING_TERMS])
    lambdas = {m: params["train_b"][m]["lambda"] for m in methods}
    paired = json.loads(args.metrics.read_text()).get("paired_vs_l2")
    made_on = json.loads(args.provenance.read_text()) if args.provenance.exists() else None
    io.write_bytes(args.report, report.markdown(rows, lambdas, seeds, figures, paired, made_on).encode())


if __name__ == "__main__":
    cli.run(main)
