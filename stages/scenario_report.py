"""Stage report of scenarios/dvc.yaml: from the runs' accuracy matrices, per scenario and method the headline metrics
(average accuracy after the last task and forgetting, with their intervals; the joint model), each seed's (seeds/),
everything else in full.json (BWT, FWT, the average after each task, R, validation numbers, paired differences to
fine-tuning; each variant's runs beside the main run of its method, paired by seed), the table beside the published
numbers (summary.csv, also the DVC plot), the figures (a bar chart and the accuracy matrices per scenario, one summary
chart) and the report scenarios/report.md. No TensorFlow."""

import argparse
import json
from pathlib import Path

from cllab import cli, scenparams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, default=Path("scenarios/runs"))
    parser.add_argument("--variants", type=Path, default=Path("scenarios/variants"))
    parser.add_argument("--anchors", type=Path, default=Path("scenarios/anchors.yaml"))
    parser.add_argument("--out-dir", type=Path, default=Path("scenarios"))
    args = parser.parse_args()
    params = scenparams.load()
    section, p = params["scenarios"], params["plot"]
    seeds, names, scenarios = section["seeds"], section["methods"], section["scenarios"]
    import numpy as np

    from cllab import io, metrics, plots, report
    from cllab.params import read_yaml

    anchors = read_yaml(args.anchors, "the published numbers, committed beside scenarios/dvc.yaml")
    tasks = len(section["order"])

    def read(path: Path) -> dict:
        try:
            run = json.loads(path.read_text())
        except FileNotFoundError:
            raise io.ArtifactError(f"{path}: missing (run its pipeline's stages first: dvc repro scenarios/dvc.yaml; "
                                  "a variant also needs its run_<variant> stage there)") from None
        except ValueError:
            raise io.ArtifactError(f"{path}: not valid JSON") from None
        rows = len(run["R"]["test"]) if "R" in run else len(run["R_joint"]["test"])
        if "R" in run and rows != tasks:
            raise io.ArtifactError(f"{path}: {rows} tasks, params.yaml scenarios.order has {tasks}")
        return run

    rows, summaries, paired, full, per_seed_files, headline, by_scenario = [], {}, {}, {}, {}, {}, {}
    for s in scenarios:
        runs = {m: {seed: read(args.runs / s / str(seed) / f"{m}.json") for seed in seeds} for m in names}
        joint_runs = {seed: read(args.runs / s / str(seed) / "joint.json")["R_joint"] for seed in seeds}
        reports = {m: {seed: metrics.sequence_run_report(r, forward_transfer=s != "class") for seed, r in by_seed.items()}
                   for m, by_seed in runs.items()}
        summary = metrics.sequence_summary({m: list(by_seed.values()) for m, by_seed in reports.items()})
        joint = {split: metrics.mean_ci95([float(np.mean(j[split])) for j in joint_runs.values()])
                 for split in ("test", "val")}
        summaries[s], by_scenario[s] = summary, reports
        paired[s] = metrics.paired_average_differences(reports, "none") if "none" in reports else {}
        per_seed = metrics.sequence_per_seed_headline(reports, {seed: j["test"] for seed, j in joint_runs.items()})
        headline.update({f"{s}/{k}": v for k, v in metrics.headline_files(per_seed).items()})
        per_seed_files.update({f"{s}/{k}": v for k, v in metrics.per_seed_files(per_seed).items()})
        full[s] = {"methods": summary, "joint": joint, "paired_to_fine_tune": paired[s]}
        for m in [*names, "joint"]:
            stat = joint["test"] if m == "joint" else summary[m]["average_accuracy"]
            forgetting = None if m == "joint" else summary[m]["forgetting"]
            anchor = anchors.get(m, {}).get(s)
            rows.append({"scenario": s, "method": m, "average_mean": stat["mean"], "average_ci95": stat["ci95"],
                         "forgetting_mean": None if forgetting is None else forgetting["mean"],
                         "forgetting_ci95": None if forgetting is None else forgetting["ci95"],
                         "anchor_low": None if anchor is None else anchor[0],
                         "anchor_high": None if anchor is None else anchor[1]})
    variants: dict = {}  # each variant's runs beside the main run of its method, seed by seed
    for v, spec in section["variants"].items():
        for s in spec["scenarios"]:
            runs = {m: {seed: read(args.variants / v / s / str(seed) / f"{m}.json") for seed in seeds}
                    for m in spec["methods"]}
            reports = {m: {seed: metrics.sequence_run_report(r, forward_transfer=s != "class")
                           for seed, r in by_seed.items()} for m, by_seed in runs.items()}
            main = by_scenario.get(s, {})
            variants.setdefault(v, {})[s] = {
                "train": spec["train"], "own": {m: spec["method"][m][s] for m in spec["methods"]},
                "methods": metrics.sequence_summary({m: list(r.values()) for m, r in reports.items()}),
                "paired_to_main": {m: metrics.paired_average_differences({"main": main[m], "variant": r}, "main")[
                    "variant"] for m, r in reports.items() if m in main}}
    out = args.out_dir
    io.save_json_files(out / "metrics" / "headline", headline)
    io.save_json_files(out / "metrics" / "seeds", per_seed_files)
    io.save_json(out / "metrics" / "full.json", {"scenarios": full, "seeds": len(seeds), "variants": variants})
    columns = ["scenario", "method", "average_mean", "average_ci95", "forgetting_mean", "forgetting_ci95",
               "anchor_low", "anchor_high"]
    io.save_csv(out / "metrics" / "summary.csv", rows, columns)

    size, dpi = (p["width_in"], p["height_in"]), p["dpi"]
    setting = plots.configuration(section["model"], section["train"])
    figures = {"All three scenarios": "plots/summary.png"}
    with io.atomic_dir(out / "plots") as tmp:
        io.write_bytes(tmp / "summary.png", plots.scenario_summary(rows, size, dpi, len(seeds), setting, tasks))
        for s in scenarios:
            mine = [r for r in rows if r["scenario"] == s]
            io.write_bytes(tmp / f"{s}.png", plots.scenario_bars(mine, s, size, dpi, len(seeds), setting, tasks))
            io.write_bytes(tmp / f"matrices_{s}.png", plots.accuracy_matrices(
                summaries[s], size, dpi, len(seeds), experiment=f"Split MNIST, {plots.SCENARIO_TITLES[s]} ({setting})"))
            figures[f"{plots.SCENARIO_TITLES[s]}: average accuracy beside the published"] = f"plots/{s}.png"
            figures[f"{plots.SCENARIO_TITLES[s]}: accuracy matrices"] = f"plots/matrices_{s}.png"
    train, model = section["train"], section["model"]
    setup = (f"{tasks} tasks of two digits ({', '.join('{' + ', '.join(map(str, g)) + '}' for g in section['order'])}),"
             f" MLP {model['hidden_layers']}×{model['hidden_units']} (ReLU), {train['optimizer']['name']} learning rate "
             f"{train['optimizer']['learning_rate']:g}, batch {train['batch_size']}, {train['iterations']} iterations "
             f"per task (the joint model: as many on all tasks at once).")
    from cllab import methods

    def own(m: str, s: str) -> dict:  # λ only where the method has one (a penalty or distillation)
        keep = methods.get(m).omega is not None or methods.get(m).distill
        return {k: v for k, v in section["method"][m][s].items() if k != "lambda" or keep}

    settings = {s: {m: own(m, s) for m in names} for s in scenarios}
    sources = "; ".join(sorted({part for a in anchors.values() if isinstance(a, dict) and "source" in a
                                for part in a["source"].split("; ")}))
    text = report.scenario_markdown(rows, summaries, paired, settings, setup, seeds, figures,
                                    f"{sources} (scenarios/anchors.yaml)", variants)
    io.write_bytes(out / "report.md", text.encode())
    for r in rows:
        print(f"{r['scenario']:>6} {r['method']:>10}: average {r['average_mean']:.3f}"
              + ("" if r["average_ci95"] is None else f" ± {r['average_ci95']:.3f}")
              + ("" if r["anchor_low"] is None else f"   (published {r['anchor_low']:g}–{r['anchor_high']:g})"))


if __name__ == "__main__":
    cli.run(main)
