"""The self-contained results report (Markdown): table of means ± 95 % intervals, figures, definitions."""

from __future__ import annotations

from typing import Mapping, Sequence

from cllab.methods import label

COLUMNS = [
    ("acc_a_after_a", "A after A"), ("acc_a_after_b", "A after B"), ("acc_b_after_b", "B after B"),
    ("forgetting", "forgetting"), ("bwt", "BWT"), ("average_accuracy", "average accuracy"),
]


def _cell(row: Mapping, column: str) -> str:
    mean, half = row[f"{column}_mean"], row[f"{column}_ci95"]
    return f"{mean:.3f}" if half != half else f"{mean:.3f} ± {half:.3f}"  # half != half: NaN, a single seed


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


def paired_table(paired: Mapping[str, Mapping], seeds: int) -> str:
    """Markdown table of the paired differences to L2 (same θ_A per seed)."""
    lines = ["| method − L2 | A after B | B after B | average accuracy | seeds where better |", "|---|---|---|---|---|"]
    for method, numbers in paired.items():
        cells = []
        for column in ("acc_a_after_b", "acc_b_after_b", "average_accuracy"):
            mean, half = numbers[column]["mean"], numbers[column]["ci95"]
            cells.append(f"{mean:+.3f}" if half is None else f"{mean:+.3f} ± {half:.3f}")
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
        f"Test accuracy, mean ± half-width of the 95 % t-interval over {len(seeds)} seeds ({', '.join(map(str, seeds))}).",
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
