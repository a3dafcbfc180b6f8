"""Do two sets of results agree? Every number of the metrics files, compared within a tolerance per kind of number.

Results made on another CPU need not be byte-identical (cllab.provenance says why), but they must agree within
what a change of CPU can do to them; a change of the code or the data moves them further. The tolerances below come
from measurement (`scripts/reproduce.py spread`, numbers in bench/README.md): the largest difference seen between
runs of the default pipeline that differed only in their floating-point rounding (float32 on three CPUs / oneDNN
ISAs, float64 with 1 vs 2 threads), doubled, rounded up.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# Largest |difference| allowed per kind of number (see the module docstring for where they come from), for results
# over MEASURED_SEEDS seeds; `tolerances(seeds)` scales the one for means to other seed counts.
TOLERANCES: dict[str, float] = {
    "per_seed": 0.05,   # one seed's accuracy, forgetting, BWT (a sweep point is one seed)
    "mean": 0.012,      # a mean over seeds (also a paired difference's mean)
    "ci95": 0.03,       # a 95 % interval's half-width
    "count": 2,         # seeds in which a method beats L2
}
MEASURED_SEEDS = 5


def tolerances(seeds: int) -> dict[str, float]:
    """TOLERANCES for results over `seeds` seeds: a mean's spread shrinks like 1/√seeds (per-seed differences are
    independent), so fewer seeds allow more, never more than one seed's tolerance."""
    scaled = TOLERANCES["mean"] * math.sqrt(MEASURED_SEEDS / max(seeds, 1))
    return {**TOLERANCES, "mean": min(TOLERANCES["per_seed"], scaled)}


@dataclass(frozen=True)
class Difference:
    """One number of the results, as committed and as reproduced here."""

    name: str
    kind: str
    committed: float | None
    here: float | None
    tolerance: float

    @property
    def delta(self) -> float:
        if self.committed is None or self.here is None:
            return 0.0 if self.committed == self.here else math.inf
        return abs(self.here - self.committed)

    @property
    def ok(self) -> bool:
        return self.delta <= self.tolerance + 1e-12


def kind_of(name: str) -> str:
    """The kind of a number from its name: 'per_seed', 'mean', 'ci95' or 'count'."""
    leaf = name.rsplit(".", 1)[-1]
    if name.startswith("per_seed"):
        return "per_seed"
    if leaf in ("mean", "ci95"):
        return leaf
    if leaf.startswith("seeds_better"):
        return "count"
    return "per_seed"


def json_numbers(text: str, prefix: str) -> dict[str, float | None]:
    """Every number (and null) of a JSON document by dotted path, e.g. 'test.methods.ewc.forgetting.mean'."""
    out: dict[str, float | None] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif node is None or isinstance(node, (int, float)) and not isinstance(node, bool):
            out[path] = node

    walk(json.loads(text), prefix)
    return out


def csv_numbers(text: str, prefix: str, keys: Iterable[str]) -> dict[str, float]:
    """The numeric cells of a CSV by '<prefix>.<key values>.<column>', rows identified by the `keys` columns."""
    keys = list(keys)
    out: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO(text)):
        ident = ".".join(row[k] for k in keys)
        for column, cell in row.items():
            if column in keys:
                continue
            try:
                out[f"{prefix}.{ident}.{column}"] = float(cell)
            except ValueError:
                out[f"{prefix}.{ident}.{column}"] = cell  # e.g. a 'diverged' flag: must match exactly
    return out


def compare(
    committed: Mapping[str, Any], here: Mapping[str, Any], tolerances: Mapping[str, float] = TOLERANCES
) -> list[Difference]:
    """Every number of either set, with its tolerance; a number missing on one side never agrees."""
    diffs = []
    for name in sorted(set(committed) | set(here)):
        a, b = committed.get(name), here.get(name)
        if isinstance(a, str) or isinstance(b, str):  # a text cell: equal or infinitely apart
            a, b = (0.0, 0.0) if a == b else (0.0, math.inf)
        kind = kind_of(name)
        diffs.append(Difference(name, kind, a, b, tolerances[kind]))
    return diffs


def moved_table(diffs: Iterable[Difference], limit: int = 40) -> str:
    """A fixed-width table of the numbers beyond their tolerance, largest relative move first."""
    moved = sorted((d for d in diffs if not d.ok), key=lambda d: -d.delta / max(d.tolerance, 1e-12))
    if not moved:
        return ""
    width = max(len(d.name) for d in moved[:limit])

    def show(v: float | None) -> str:
        return "missing" if v is None else f"{v:.4f}"

    lines = [f"{'metric':<{width}}  {'committed':>9}  {'here':>9}  {'|Δ|':>8}  {'allowed':>7}"]
    for d in moved[:limit]:
        lines.append(f"{d.name:<{width}}  {show(d.committed):>9}  {show(d.here):>9}  {d.delta:8.4f}  {d.tolerance:7.4f}")
    if len(moved) > limit:
        lines.append(f"... and {len(moved) - limit} more")
    return "\n".join(lines)


def spread_by_kind(diffs: Iterable[Difference]) -> dict[str, float]:
    """The largest |difference| of each kind of number (finite ones only)."""
    spread: dict[str, float] = {}
    for d in diffs:
        if math.isfinite(d.delta):
            spread[d.kind] = max(spread.get(d.kind, 0.0), d.delta)
    return spread
