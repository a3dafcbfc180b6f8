"""Stage report of sequence/dvc.yaml: from the runs' accuracy matrices, the headline metrics (per method: average
accuracy after all tasks and forgetting, and their intervals; the joint model), everything else as plain files
(seeds/<seed>/<method>.json: each seed's headline numbers; full.json: per method BWT, FWT, the average after each
task, R, validation numbers; by_tasks.csv for `dvc plots`), the Fig. 2A/2B-style figures, the accuracy matrices and
the report section sequence/report.md. No TensorFlow."""

import argparse
import json
from pathlib import Path

from cllab import cli, seqparams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, default=Path("sequence/runs"))
    parser.add_argument("--out-dir", type=Path, default=Path("sequence"))
    parser.add_argument("--overrides", type=Path, default=None,
                        help="YAML of params.yaml keys to replace: a named configuration, e.g. sequence/paper/params.yaml")
    args = parser.parse_args()
    params = seqparams.load(overrides=args.overrides)
    seq, p = params["sequence"], params["plot"]
    seeds, names = seq["seeds"], seq["methods"]
    import numpy as np

    from cllab import io, methods, metrics, plots, report

    def read(path: Path) -> dict:
        try:
            run = json.loads(path.read_text())
        except FileNotFoundError:
            raise io.ArtifactError(f"{path}: missing (run its pipeline's stages first: dvc repro)") from None
        except ValueError:
            raise io.ArtifactError(f"{path}: not valid JSON") from None
        rows = len(run["R"]["test"]) if "R" in run else len(run["R_joint"]["test"])
        if rows != seq["num_tasks"] and "R" in run:
            raise io.ArtifactError(f"{path}: {rows} tasks, params.yaml sequence.num_tasks is {seq['num_tasks']}")
        return run

    runs = {m: {s: read(args.runs / str(s) / f"{m}.json") for s in seeds} for m in names}
    joint_runs = {s: read(args.runs / str(s) / "joint.json")["R_joint"] for s in seeds}
    reports = {m: {s: metrics.sequence_run_report(r) for s, r in by_seed.items()} for m, by_seed in runs.items()}
    summary = metrics.sequence_summary({m: list(by_seed.values()) for m, by_seed in reports.items()})
    joint = {split: metrics.mean_ci95([float(np.mean(j[split])) for j in joint_runs.values()])
             for split in ("test", "val")}
    out = args.out_dir
    per_seed = metrics.sequence_per_seed_headline(reports, {s: j["test"] for s, j in joint_runs.items()})
    io.save_json_files(out / "metrics" / "headline", metrics.headline_files(per_seed))  # these methods only
    io.save_json_files(out / "metrics" / "seeds", metrics.per_seed_files(per_seed))  # dvc metrics diff --targets …/0
    io.save_json(out / "metrics" / "full.json", {"methods": summary, "joint": joint, "seeds": len(seeds)})

    tasks = seq["num_tasks"]
    # one joint model, trained on all tasks at once, scored on the first t (not a joint model of t tasks)
    references = {"joint": (f"joint, all {tasks} tasks at once (upper bound)",
                            [float(np.mean([np.mean(j["test"][:t]) for j in joint_runs.values()]))
                             for t in range(1, tasks + 1)])}
    if "none" in runs:  # what each task reaches when just learned without protection: fine-tuning's diagonal
        diagonal = np.mean([np.diag(r["R"]["test"]) for r in runs["none"].values()], axis=0)
        references["just_learned"] = ("each task just learned (fine-tune)",
                                      [float(np.mean(diagonal[:t])) for t in range(1, tasks + 1)])
    by_tasks = plots.sequence_by_tasks_table(summary, references)
    io.save_csv(out / "metrics" / "by_tasks.csv", by_tasks, plots.SEQUENCE_BY_TASKS_COLUMNS)
    size, dpi = (p["width_in"], p["height_in"]), p["dpi"]
    setting = plots.configuration(seq["model"], seq["train"])  # which configuration: default or paper scale
    curves = {m: {s: run["curve"] for s, run in by_seed.items()} for m, by_seed in runs.items()}
    curve_table = plots.sequence_curve_table(curves, seq["curve_tasks"])
    figures = {
        "Test accuracy of the first tasks while the next are learned (Kirkpatrick et al. Fig. 2A)":
            "plots/fig2a.png",
        "Average accuracy as tasks accumulate (Fig. 2B)": "plots/fig2b.png",
        "Accuracy matrices": "plots/matrices.png",
    }
    with io.atomic_dir(out / "plots") as tmp:
        io.write_bytes(tmp / "fig2a.png", plots.sequence_curves(curve_table, seq["curve_tasks"],
                                                                seq["train"]["epochs"], size, dpi, len(seeds), setting))
        io.write_bytes(tmp / "fig2b.png", plots.sequence_average(by_tasks, size, dpi, len(seeds), setting))
        io.write_bytes(tmp / "matrices.png", plots.accuracy_matrices(summary, size, dpi, len(seeds),
                                                                     f"Permuted MNIST ({setting})"))
        io.save_csv(tmp / "curves.csv", curve_table, plots.sequence_curve_columns(seq["curve_tasks"]))
    train = seq["train"]
    model = seq["model"]
    setup = (f"{tasks} tasks: MNIST, then MNIST with its pixels permuted (one fixed order per task and seed); one "
             f"10-way output. MLP {model['hidden_layers']}×{model['hidden_units']} (ReLU), "
             f"{train['optimizer']['name']} learning rate {train['optimizer']['learning_rate']:g}, batch "
             f"{train['batch_size']}, {train['epochs']} epoch(s) per task (the joint model: as many epochs over all "
             f"tasks at once). Importance of task t from its own training data after learning it.")
    lr = train["optimizer"]["learning_rate"]  # SGD's stability edge: Adam's step is bounded by lr, no such edge
    divergence = {m: lr * seq["method"][m]["lambda"] * max(max(r["max_importance"]) for r in runs[m].values())
                  for m in names if methods.get(m).omega is not None} if train["optimizer"]["name"] == "sgd" else {}
    carried = [m for m in names if methods.get(m).omega == "omega_fisher"]
    settings = {m: seq["method"][m] for m in names}
    text = report.sequence_markdown(summary, settings, joint, setup, seeds, carried, figures, divergence)
    io.write_bytes(out / "report.md", text.encode())
    for method, entry in summary.items():
        print(f"{method:>12}: average after {tasks} tasks {entry['average_accuracy']['mean']:.3f}"
              + ("" if entry["average_accuracy"]["ci95"] is None else f" ± {entry['average_accuracy']['ci95']:.3f}"))
    print(f"{'joint':>12}: {joint['test']['mean']:.3f}")


if __name__ == "__main__":
    cli.run(main)
