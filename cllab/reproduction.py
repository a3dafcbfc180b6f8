"""Do two sets of results agree? Every number of the metrics files, compared within a tolerance per kind of number.

Results made on another CPU need not be byte-identical (cllab.provenance says why), but they must agree within
what a change of CPU can do to them; a change of the code or the data moves them further. The tolerances come from
measurement (`python scripts/reproduce.py spread`, README "what reproduces where"), per precision of the committed
results, on the default pipeline (5 seeds, 930 numbers):

- float32: this AMD EPYC (AVX-512) against the host that made the earlier float32 results, the same code: per-seed
  values moved by up to 0.0225, means by 0.0053, intervals by 0.0040, seed counts by 0 (an Intel Xeon against the
  same results, reported in the issue tracker: 0.023 and 0.0045). Allowed: twice that, rounded up.
- float64: 1 instead of 2 threads changes Eigen's blocking and so the bits (weights differ by up to 1.6e-15 after
  training), the kind of change another CPU can make in float64; every one of the 930 numbers stayed identical.
  Allowed: 0.001, five test examples of ~5,000 per task, so that a borderline example flipping still passes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from cllab.provenance import flatten

# Largest |difference| allowed per kind of number and precision of the results (see the module docstring for where
# they come from), for results over MEASURED_SEEDS seeds; `tolerances` scales the one for means to other seed counts.
TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {"per_seed": 0.001, "mean": 0.001, "ci95": 0.001, "count": 0},
    "float32": {
        "per_seed": 0.05,   # one seed's accuracy, forgetting, BWT (a sweep point is one seed)
        "mean": 0.011,      # a mean over seeds (also a paired difference's mean)
        "ci95": 0.01,       # a 95 % interval's half-width
        "count": 1,         # seeds in which a method beats L2
    },
}
MEASURED_SEEDS = 5
EXACT = {"per_seed": 0.0, "mean": 0.0, "ci95": 0.0, "count": 0}


def tolerances(precision: str, seeds: int) -> dict[str, float]:
    """TOLERANCES of `precision` for results over `seeds` seeds: a mean's spread shrinks like 1/√seeds (per-seed
    differences are independent), so fewer seeds allow more, never more than one seed's tolerance."""
    if precision not in TOLERANCES:
        raise ValueError(f"no tolerances for precision {precision!r} (expected one of {', '.join(TOLERANCES)})")
    base = TOLERANCES[precision]
    scaled = base["mean"] * math.sqrt(MEASURED_SEEDS / max(seeds, 1))
    return {**base, "mean": min(base["per_seed"], scaled)}


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
    leaves = flatten(json.loads(text), f"{prefix}.")
    return {path: value for path, value in leaves.items()
            if value is None or isinstance(value, (int, float)) and not isinstance(value, bool)}


def csv_numbers(text: str, prefix: str, keys: Iterable[str]) -> dict[str, float | str | None]:
    """The cells of a CSV by '<prefix>.<key values>.<column>', rows identified by the `keys` columns: numbers as
    floats, an empty cell (undefined, e.g. the joint model's forgetting) as None like JSON's null, other text as is."""
    keys = list(keys)
    out: dict[str, float | str | None] = {}
    for row in csv.DictReader(io.StringIO(text)):
        ident = ".".join(row[k] for k in keys)
        for column, cell in row.items():
            if column in keys:
                continue
            if cell == "":
                out[f"{prefix}.{ident}.{column}"] = None
                continue
            try:
                out[f"{prefix}.{ident}.{column}"] = float(cell)
            except ValueError:
                out[f"{prefix}.{ident}.{column}"] = cell  # e.g. a 'diverged' flag: must match exactly
    return out


def compare(
    committed: Mapping[str, Any], here: Mapping[str, Any], allowed: Mapping[str, float] = EXACT
) -> list[Difference]:
    """Every number of either set, with its tolerance (default: none); a number missing on one side never agrees."""
    diffs = []
    for name in sorted(set(committed) | set(here)):
        a, b = committed.get(name), here.get(name)
        if isinstance(a, str) or isinstance(b, str):  # a text cell: equal or infinitely apart
            a, b = (0.0, 0.0) if a == b else (0.0, math.inf)
        kind = kind_of(name)
        diffs.append(Difference(name, kind, a, b, allowed[kind]))
    return diffs


def moved_table(diffs: Iterable[Difference], limit: int = 40) -> str:
    """A fixed-width table of the numbers beyond their tolerance, largest move first (seed counts last)."""
    moved = sorted((d for d in diffs if not d.ok), key=lambda d: (d.kind == "count", -d.delta))
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
