"""The self-contained results report (Markdown): table of means ± 95 % intervals, figures, definitions."""

from __future__ import annotations

from typing import Mapping, Sequence

from cllab.methods import label

COLUMNS = [
    ("acc_a_after_a", "A after A"), ("acc_a_after_b", "A after B"), ("acc_b_after_b", "B after B"),
    ("forgetting", "forgetting"), ("bwt", "BWT"), ("average_accuracy", "average accuracy"),
]


def mean_pm(mean: float, half: float | None, signed: bool = False) -> str:
    """'0.842 ± 0.019' (three decimals; '+0.034 ± …' when signed); the mean alone when there is no interval (one
    seed: half None)."""
    text = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    return text if half is None else f"{text} ± {half:.3f}"


def _cell(row: Mapping, column: str) -> str:
    return mean_pm(row[f"{column}_mean"], row[f"{column}_ci95"])


def results_table(rows: Sequence[Mapping], lambdas: Mapping[str, float]) -> str:
    """Markdown table, one row per method (then joint), mean ± 95 % t-interval half-width over seeds."""
    lines = ["| method | λ | " + " | ".join(name for _, name in COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for row in rows:
        method = row["method"]
        if method == "joint":
            cells = ["—", _cell(row, "acc_a_after_b"), _cell(row, "acc_b_after_b"), "—", "—", _cell(row, "average_accuracy")]
            lines.append(f"| {label(method)} | — | " + " | ".join(cells) + " |")
        else:
            cells = [_cell(row, c) for c, _ in COLUMNS]
            lines.append(f"| {label(method)} | {lambdas.get(method, 0):g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seeds_line(seeds: Sequence[int]) -> str:
    """What the report's numbers are: one seed's values, or means with the 95 % t-interval over the seeds."""
    if len(seeds) == 1:
        return f"Test accuracy of one seed ({seeds[0]}): no interval."
    return f"Test accuracy, mean ± half-width of the 95 % t-interval over {len(seeds)} seeds ({', '.join(map(str, seeds))})."


def paired_table(paired: Mapping[str, Mapping], seeds: int) -> str:
    """Markdown table of the paired differences to L2 (same θ_A per seed)."""
    lines = ["| method − L2 | A after B | B after B | average accuracy | seeds where better |", "|---|---|---|---|---|"]
    for method, numbers in paired.items():
        cells = []
        for column in ("acc_a_after_b", "acc_b_after_b", "average_accuracy"):
            mean, half = numbers[column]["mean"], numbers[column]["ci95"]
            cells.append(mean_pm(mean, half, signed=True))
        lines.append(f"| {label(method)} | " + " | ".join(cells) + f" | {numbers['seeds_better_on_average_accuracy']}/{seeds} |")
    return "\n".join(lines)


def markdown(
    rows: Sequence[Mapping], lambdas: Mapping[str, float], seeds: Sequence[int], figures: Mapping[str, str],
    paired: Mapping[str, Mapping] | None = None, provenance: Mapping | None = None,
) -> str:
    """The whole report; `figures` maps a caption to a PNG path relative to the report; `provenance` (the machine
    and software that made the results, cllab.provenance) ends it."""
    parts = [
        "# Split MNIST: forgetting and the penalties that prevent it",
        "",
        seeds_line(seeds),
        "Task A = even digits, task B = odd digits, label = digit // 2. Each penalty is λ/2·Σ Ω(θ − θ_A)², Ω = 1 (L2),",
        "the diagonal Fisher of θ_A on task A (EWC; exact, sampled or empirical), SI's path integral, or MAS'",
        "output sensitivity.",
        "",
        results_table(rows, lambdas),
        "",
        "R[i][j] = accuracy on task j after training task i. Forgetting = R[A][A] − R[B][A];",
        "BWT (backward transfer) = R[B][A] − R[A][A]; average accuracy = (R[B][A] + R[B][B]) / 2.",
        "",
    ]
    if paired:
        parts += [
            "## Paired with L2 (difference on the same θ_A, per seed)",
            "",
            paired_table(paired, len(seeds)),
            "",
        ]
    for caption, path in figures.items():
        parts += [f"## {caption}", "", f"![{caption}]({path})", ""]
    if provenance:
        from cllab.provenance import markdown as provenance_table

        parts += [
            "## Where these results were made (provenance.json)",
            "",
            "Where these entries match, a rerun gives byte-identical results; in float64 the bytes also held under every",
            "other CPU emulated so far, and elsewhere every number must agree within the measured tolerances",
            "(`bash scripts/check_reproduction.sh`; README: what reproduces where).",
            "",
            provenance_table(provenance),
            "",
        ]
    return "\n".join(parts)


# --- A sequence of tasks (permuted MNIST) -----------------------------------------------------------------------------


def _stat(stat: Mapping | None, signed: bool = False) -> str:
    if stat is None:
        return "—"
    return mean_pm(stat["mean"], stat["ci95"], signed)


def _settings(own: Mapping) -> str:
    names = {"lambda": "λ", "gamma": "γ", "per_task": "examples per task", "per_class": "examples per class"}
    return ", ".join(f"{names.get(k, k)} {v:g}" for k, v in own.items())


def sequence_table(summary: Mapping[str, Mapping], settings: Mapping[str, Mapping], joint: Mapping) -> str:
    """Markdown table, one row per method then the joint model: test average accuracy after all tasks, BWT,
    forgetting, FWT, and the validation average accuracy (the number hyper-parameters are chosen by)."""
    lines = ["| method | settings | average accuracy | BWT | forgetting | FWT | validation average |",
             "|---|---|---|---|---|---|---|"]
    for method, entry in summary.items():
        cells = [_stat(entry["average_accuracy"]), _stat(entry["bwt"], True), _stat(entry["forgetting"]),
                 _stat(entry["fwt"], True), _stat(entry["val_average_accuracy"])]
        lines.append(f"| {label(method)} | {_settings(settings[method])} | " + " | ".join(cells) + " |")
    lines.append(f"| {label('joint')} | — | {_stat(joint['test'])} | — | — | — | {_stat(joint['val'])} |")
    return "\n".join(lines)


def task_c_table(summary: Mapping[str, Mapping], names: Sequence[str], after: int) -> str:
    """The task-C comparison: how the importances of past tasks carry over, after task `after` and at the end."""
    lines = [f"| carrying the Fisher over | average after task {after} | task 1 after task {after} | "
             f"average after task {len(next(iter(summary.values()))['average_after_task'])} |", "|---|---|---|---|"]
    for method in names:
        entry = summary[method]
        task1 = entry["first_task_after_task"][after - 1]
        lines.append(f"| {label(method)} | {_stat(entry['average_after_task'][after - 1])} | {_stat(task1)} | "
                     f"{_stat(entry['average_after_task'][-1])} |")
    return "\n".join(lines)


def sequence_markdown(summary: Mapping[str, Mapping], settings: Mapping[str, Mapping], joint: Mapping,
                      setup: str, seeds: Sequence[int], task_c: Sequence[str], figures: Mapping[str, str],
                      divergence: Mapping[str, float]) -> str:
    """The sequence's report section: the table, the task-C comparison (methods `task_c`), the figures
    ({caption: PNG path relative to the report}), and lr × λ × max Ω̄ per penalised method (SGD diverges near 2)."""
    parts = [
        "# Permuted MNIST: many tasks in turn",
        "",
        setup,
        seeds_line(seeds),
        "",
        sequence_table(summary, settings, joint),
        "",
        "R[i][j] = test accuracy on task j after training task i (T tasks). Average accuracy = mean_j R[T][j];",
        "BWT = mean_{j<T} (R[T][j] − R[j][j]); forgetting = mean_{j<T} max_{j≤l<T} (R[l][j] − R[T][j]);",
        "FWT = mean_{j>1} (R[j−1][j] − accuracy of the initial model on task j).",
        "",
    ]
    if task_c:
        from cllab.methods import get

        alike = len({settings[m]["lambda"] for m in task_c}) == 1 and len({repr(dict(get(m).fixed)) for m in task_c}) == 1
        parts += [
            "## Task C: how the Fisher carries over",
            "",
            ("Same λ, Fisher and seed for every row, so tasks 1 and 2 are trained identically (one past task: every way"
             " of carrying gives Ω_1 at θ_1); they differ from task 3 (task C) on." if alike else
             "The rows differ in λ or in the kind of Fisher, so they differ from task 2 on, not only in the carrying."),
            "",
            task_c_table(summary, task_c, min(3, len(next(iter(summary.values()))["average_after_task"]))),
            "",
        ]
    if divergence:
        parts += ["Largest learning rate × λ × max Ω̄ over the tasks (plain SGD diverges near 2): "
                  + ", ".join(f"{label(m)} {v:.2g}" for m, v in divergence.items()) + ".", ""]
    for caption, path in figures.items():
        parts += [f"## {caption}", "", f"![{caption}]({path})", ""]
    return "\n".join(parts)


def _range(anchor: Sequence[float] | None) -> str:
    if anchor is None:
        return "—"
    low, high = anchor
    return f"{low:.3g}" if low == high else f"{low:.3g}–{high:.3g}"


def scenario_table(rows: Sequence[Mapping], scenarios: Sequence[str]) -> str:
    """Markdown table, one row per method (joint last): per scenario the lab's average test accuracy after the last
    task (mean ± 95 % interval) beside the published range; rows from the scenario report's summary table."""
    by = {(r["scenario"], r["method"]): r for r in rows}
    names = list(dict.fromkeys(r["method"] for r in rows))
    head = "| method | " + " | ".join(f"{s}-IL | published" for s in scenarios) + " |"
    lines = [head, "|---" * (1 + 2 * len(scenarios)) + "|"]
    for name in names:
        cells = []
        for s in scenarios:
            r = by.get((s, name))
            cells += ["—", "—"] if r is None else [
                mean_pm(r["average_mean"], r["average_ci95"]),
                _range(None if r["anchor_low"] is None else (r["anchor_low"], r["anchor_high"]))]
        lines.append(f"| {label(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variant_table(variants: Mapping[str, Mapping[str, Mapping]], summaries: Mapping[str, Mapping[str, Mapping]]
                  ) -> str:
    """Markdown table, one row per variant, scenario and method: its settings, its average test accuracy, the main
    run's, and the paired difference (variant − main run, seed by seed); `variants` as full.json's `variants`."""
    lines = ["| variant | scenario | method | settings | average accuracy | main run | variant − main (paired) |",
             "|---|---|---|---|---|---|---|"]
    for name, by_scenario in variants.items():
        for s, entry in by_scenario.items():
            changed = ", ".join(f"{v['name']}, learning rate {v['learning_rate']:g}" if k == "optimizer"
                                else f"{k.replace('_', ' ')} {v}" for k, v in entry["train"].items())
            for method, stat in entry["methods"].items():
                main = summaries.get(s, {}).get(method)
                diff = entry["paired_to_main"].get(method)
                diff_cell = "—" if diff is None else (f"{mean_pm(diff['mean'], diff['ci95'], signed=True)} "
                                                      f"({diff['seeds_better']}/{diff['seeds']} seeds better)")
                lines.append(f"| {name} | {s}-IL | {label(method)} | {changed}; {_settings(entry['own'][method])} | "
                             f"{_stat(stat['average_accuracy'])} | "
                             f"{'—' if main is None else _stat(main['average_accuracy'])} | {diff_cell} |")
    return "\n".join(lines)


def scenario_markdown(rows: Sequence[Mapping], summaries: Mapping[str, Mapping[str, Mapping]],
                      paired: Mapping[str, Mapping[str, Mapping]], settings: Mapping[str, Mapping[str, Mapping]],
                      setup: str, seeds: Sequence[int], figures: Mapping[str, str], sources: str,
                      variants: Mapping[str, Mapping[str, Mapping]] | None = None) -> str:
    """The three-scenario report: the table beside the published numbers, then per scenario BWT, forgetting, the
    validation average and the paired difference to fine-tuning, the variants beside their main runs (if any ran),
    and the figures ({caption: PNG path})."""
    scenarios = list(summaries)
    parts = ["# Split MNIST in three scenarios", "", setup, seeds_line(seeds), "",
             scenario_table(rows, scenarios), "", f"Published: {sources}", ""]
    for s in scenarios:
        parts += [f"## {s}-incremental", "",
                  "| method | settings | average accuracy | BWT | forgetting | validation average | − fine-tune "
                  "(paired) |", "|---|---|---|---|---|---|---|"]
        for method, entry in summaries[s].items():
            diff = paired[s].get(method)
            diff_cell = "—" if diff is None else (f"{mean_pm(diff['mean'], diff['ci95'], signed=True)} "
                                                  f"({diff['seeds_better']}/{diff['seeds']} seeds better)")
            parts.append(f"| {label(method)} | {_settings(settings[s][method]) or '—'} | "
                         f"{_stat(entry['average_accuracy'])} | {_stat(entry['bwt'], True)} | "
                         f"{_stat(entry['forgetting'])} | {_stat(entry['val_average_accuracy'])} | {diff_cell} |")
        parts.append("")
    if any(variants.values() if variants else ()):
        parts += ["## Variants: the same methods trained otherwise", "", variant_table(variants, summaries), ""]
    parts += ["R[i][j] = test accuracy on task j after training task i, scored as the scenario says (task-IL: the",
              "task's two units; domain-IL: both units; class-IL: the units of every class seen so far). Average",
              "accuracy = mean_j R[5][j]; BWT = mean_{j<5} (R[5][j] − R[j][j]); forgetting = mean_{j<5} max_{j≤l<5}",
              "(R[l][j] − R[5][j]).", ""]
    for caption, path in figures.items():
        parts += [f"## {caption}", "", f"![{caption}]({path})", ""]
    return "\n".join(parts)
