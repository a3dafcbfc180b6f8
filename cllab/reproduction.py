"""Do two sets of results agree? Every number of the result files, compared within a tolerance per kind of number.

Results made on another CPU need not be byte-identical (cllab.provenance says why), but they must agree within
what a change of CPU can do to them; a change of the code or the data moves them further. The tolerances come from
measurement (`python scripts/reproduce.py spread`, docs/reproducibility.md), per precision of the committed
results, on the default pipeline (5 seeds, 930 numbers):

- float32: this AMD EPYC (AVX-512) against the host that made the earlier float32 results, the same code: per-seed
  values moved by up to 0.0225, means by 0.0053, intervals by 0.0040, seed counts by 0 (an Intel Xeon against the
  same results, reported in the issue tracker: 0.023 and 0.0045). Allowed: twice that, rounded up.
- float64: 1 instead of 2 threads changes Eigen's blocking and so the bits (weights differ by up to 1.6e-15 after
  training), the kind of change another CPU can make in float64; every one of the 930 numbers stayed identical.
  Allowed: 0.001, five test examples of ~5,000 per task, so that a borderline example flipping still passes.

`compare_trees` compares two trees of result files (every committed output of a pipeline: scripts/reproduce.py lists
them from dvc.yaml), each number by the kind `kind_in` gives it:

- exact: integers in the files (seed, step, epoch, task, seeds, hidden_units, an integer λ): identities and settings
  that no CPU moves, and text values (a method's name, a 'diverged' flag). A forged or moved one fails at any
  precision.
- count: `seeds_better_*` (seeds in which a method beats L2).
- mean / ci95: a key or column named `mean`/`ci95` or ending in `_mean`/`_ci95` (test.json, full.json, test.csv,
  by_tasks.csv's `ci95`); else the file's kind by MEAN_FILES: headline files (means; `*.ci95.json` intervals), the
  means over seeds in plots/forgetting.csv, sequence plots/curves.csv and by_tasks.csv.
- per_seed: everything else (per-seed JSON and CSV, the sequence's runs, the sweep's points, plots/training_b.csv's
  losses), the largest tolerance, so where unsure the check errs towards passing a change of CPU. Losses and
  penalties (training_b.csv) were never measured across CPUs: in float32 they may move more than accuracies do.

What a forgery of +0.03 meets: in float64 (the default) every number is held to 0.001, so it fails anywhere. In
float32 it fails on a mean (0.011, or 0.011·√(5/seeds) with fewer seeds: 0.017 with 2), an interval (0.01) or an
integer, but passes on a per-seed value (0.05): there, only byte mode (a machine matching provenance.json) sees it.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import io
import json
import math
import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from cllab.provenance import flatten

# Largest |difference| allowed per kind of number and precision of the results (see the module docstring for where
# they come from), for results over MEASURED_SEEDS seeds; `tolerances` scales the one for means to other seed counts.
TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {"per_seed": 0.001, "mean": 0.001, "ci95": 0.001, "count": 0, "exact": 0},
    "float32": {
        "per_seed": 0.05,   # one seed's accuracy, forgetting, BWT (a sweep point is one seed)
        "mean": 0.011,      # a mean over seeds (also a paired difference's mean)
        "ci95": 0.01,       # a 95 % interval's half-width
        "count": 1,         # seeds in which a method beats L2
        "exact": 0,         # an integer: seed, step, epoch, number of seeds, a setting
    },
}
MEASURED_SEEDS = 5
EXACT = {"per_seed": 0.0, "mean": 0.0, "ci95": 0.0, "count": 0, "exact": 0}


def tolerances(precision: str, seeds: int) -> dict[str, float]:
    """TOLERANCES of `precision` for results over `seeds` seeds: a mean's spread shrinks like 1/√seeds (per-seed
    differences are independent), so fewer seeds allow more, never more than one seed's tolerance."""
    if precision not in TOLERANCES:
        raise ValueError(f"no tolerances for precision {precision!r} (expected one of {', '.join(TOLERANCES)})")
    base = TOLERANCES[precision]
    scaled = base["mean"] * math.sqrt(MEASURED_SEEDS / max(seeds, 1))
    return {**base, "mean": min(base["per_seed"], scaled)}


class _Absent:
    """A value that one side does not have at all (unlike None, an undefined number: JSON null, an empty cell)."""

    def __repr__(self) -> str:
        return "absent"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Difference:
    """One number (or text cell) of the results, as committed and as reproduced here."""

    name: str
    kind: str
    committed: float | str | None
    here: float | str | None
    tolerance: float

    @property
    def delta(self) -> float:
        a, b = self.committed, self.here
        if a is ABSENT or b is ABSENT:
            return math.inf
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return 0.0 if a == b else math.inf
        if a == b or (math.isnan(a) and math.isnan(b)):
            return 0.0
        return abs(b - a) if not math.isnan(b - a) else math.inf

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
    committed: Mapping[str, Any], here: Mapping[str, Any], allowed: Mapping[str, float] = EXACT,
    kinds: Mapping[str, str] | None = None,
) -> list[Difference]:
    """Every number of either set, with its tolerance (default: none) by its kind (from `kinds`, else its name); a
    number missing on one side never agrees, nor does a text cell (e.g. a 'diverged' flag) that changed."""
    diffs = []
    for name in sorted(set(committed) | set(here)):
        a, b = committed.get(name, ABSENT), here.get(name, ABSENT)
        kind = (kinds or {}).get(name) or kind_of(name)
        diffs.append(Difference(name, kind, a, b, allowed[kind]))
    return diffs


def moved_table(diffs: Iterable[Difference], limit: int = 40) -> str:
    """A fixed-width table of the numbers beyond their tolerance, largest move first (seed counts last); beyond
    `limit` rows, the files of the others ('<file>:<key>' names) with how many moved in each."""
    moved = sorted((d for d in diffs if not d.ok), key=lambda d: (d.kind == "count", -d.delta))
    if not moved:
        return ""
    width = max(len(d.name) for d in moved[:limit])

    def show(v: float | str | None) -> str:
        if v is None or v is ABSENT:
            return "missing" if v is None else "absent"
        return (v if len(v) <= 9 else v[:8] + "…") if isinstance(v, str) else f"{v:.4f}"

    lines = [f"{'metric':<{width}}  {'committed':>9}  {'here':>9}  {'|Δ|':>8}  {'allowed':>7}"]
    for d in moved[:limit]:
        lines.append(f"{d.name:<{width}}  {show(d.committed):>9}  {show(d.here):>9}  {d.delta:8.4f}  {d.tolerance:7.4f}")
    if len(moved) > limit:
        files: dict[str, int] = {}
        for d in moved[limit:]:
            files[d.name.split(":", 1)[0]] = files.get(d.name.split(":", 1)[0], 0) + 1
        lines.append(f"... and {len(moved) - limit} more, in " + ", ".join(f"{f} ({n})" for f, n in files.items()))
    return "\n".join(lines)


def spread_by_kind(diffs: Iterable[Difference]) -> dict[str, float]:
    """The largest |difference| of each kind of number (finite ones only)."""
    spread: dict[str, float] = {}
    for d in diffs:
        if math.isfinite(d.delta):
            spread[d.kind] = max(spread.get(d.kind, 0.0), d.delta)
    return spread


# Trees of result files: every committed output of a pipeline, as committed and as reproduced here --------------------

Reader = Callable[[str], "bytes | None"]  # a file's bytes by its path in the project, None where there is no file
# Result files whose numbers are read, by how their name ends
READABLE = (".json", ".csv", ".tsv", ".yaml", ".yml")
# Result files without numbers to compare: their bytes follow the numbers' last bits (an image, a report's text, a
# lock file's hashes), so in tolerance mode a difference is listed, not a failure. Any other kind of file must be
# byte-identical in both modes.
BYTES_ONLY = (".png", ".svg", ".jpg", ".pdf", ".md", ".html", ".lock")
# The kind of the numbers of a file where neither the key nor the value says (fnmatch patterns: '*' spans '/'); first
# match wins, else per_seed
MEAN_FILES = (
    ("*.ci95.json", "ci95"),          # metrics/headline/<method>.ci95.json: the intervals of the headline
    ("*/headline/*.json", "mean"),    # the headline: means over seeds
    ("plots/forgetting.csv", "mean"),  # accuracy while training B, mean over seeds
    ("*plots/curves.csv", "mean"),    # the sequence's curves, mean over seeds
    ("*/by_tasks.csv", "mean"),       # the sequence's average accuracy after t tasks, mean over seeds
)
INTEGER = re.compile(r"[+-]?[0-9]+")
TABLE_ROWS = 100  # rows of the table of moved numbers; the files of any others are named after it


def has_numbers(path: str) -> bool:
    """Whether `path` is a file whose numbers are read (JSON, CSV, TSV, YAML)."""
    return path.lower().endswith(READABLE)


def bytes_only(path: str) -> bool:
    """Whether `path` holds nothing to compare but its bytes (an image, Markdown, a lock file)."""
    return path.lower().endswith(BYTES_ONLY)


def kind_in(path: str, key: tuple[str | int, ...], value: Any) -> str:
    """The kind of the number at `key` (dict keys, list indices and CSV row numbers, column names) of file `path`."""
    named = [k for k in key if isinstance(k, str)]
    last = named[-1] if named else ""
    if last.startswith("seeds_better"):
        return "count"
    if isinstance(value, (int, str)):  # an integer or a text value (a flag, a method's name): no CPU moves it
        return "exact"
    for part in reversed(named):
        if part == "mean" or part.endswith("_mean"):
            return "mean"
        if part == "ci95" or part.endswith("_ci95"):
            return "ci95"
    return next((kind for pattern, kind in MEAN_FILES if fnmatch.fnmatch(path, pattern)), "per_seed")


def _leaves(node: Any, key: tuple = ()) -> Iterable[tuple[tuple, Any]]:
    """(key, value) of every leaf of parsed JSON/YAML, list items by index; a bool as text ('true'/'false')."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves(v, (*key, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*key, i))
    elif isinstance(node, bool):
        yield key, "true" if node else "false"
    elif node is None or isinstance(node, (int, float, str)):
        yield key, node
    else:  # a YAML date or the like: compared as its text
        yield key, str(node)


def _cell(text: str) -> int | float | str | None:
    """A CSV/TSV cell: an integer, a float, None where empty (an undefined number), else its text."""
    if text == "":
        return None
    if INTEGER.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _table_leaves(text: str, delimiter: str) -> Iterable[tuple[tuple, Any]]:
    """((row, column), cell) of every cell under the header, rows numbered from 0 (a row is found by its position,
    like a JSON list item, so a forged key column is found too); a repeated or missing header gets '#<index>'."""
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = rows[0] if rows else []
    names = [h if h and header.count(h) == 1 else f"#{j}" for j, h in enumerate(header)]
    for i, row in enumerate(rows[1:]):
        for j, cell in enumerate(row):
            yield (i, names[j] if j < len(names) else f"#{j}"), _cell(cell)


def _name(path: str, key: tuple) -> str:
    """'metrics/test.json:methods.ewc.forgetting.mean', 'metrics/test_per_seed.csv:3.forgetting'."""
    return f"{path}:{'.'.join(map(str, key))}" if key else path


@dataclass(frozen=True)
class FileValues:
    """The numbers and text values of one result file by name, with each one's kind."""

    values: Mapping[str, Any]
    kinds: Mapping[str, str]
    numbers: int
    texts: int
    seeds: int | None  # the fewest seeds a `seeds` entry of the file reports (the mean tolerance depends on it)


@functools.lru_cache(maxsize=8192)
def file_values(path: str, data: bytes) -> FileValues:
    """Every number and text value of a result file (JSON leaves, lists item by item; CSV/TSV cells by row and
    column); raises ValueError naming the file if it cannot be read. Cached: the same bytes are read once."""
    try:
        text = data.decode("utf-8")
        lower = path.lower()
        if lower.endswith(".json"):
            leaves = list(_leaves(json.loads(text)))
        elif lower.endswith((".yaml", ".yml")):
            import yaml

            leaves = list(_leaves(yaml.safe_load(text)))
        elif lower.endswith((".csv", ".tsv")):
            leaves = list(_table_leaves(text, "\t" if lower.endswith(".tsv") else ","))
        else:
            raise ValueError("not a JSON, CSV, TSV or YAML file")
    except Exception as err:  # noqa: BLE001 - JSON, YAML, CSV and UTF-8 errors alike: one line naming the file
        why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise ValueError(f"{path}: cannot read its numbers ({why})") from None
    values = {_name(path, key): value for key, value in leaves}
    kinds = {_name(path, key): kind_in(path, key, value) for key, value in leaves}
    texts = sum(isinstance(v, str) for v in values.values())
    seeds = [v for (key, v) in leaves if key and key[-1] == "seeds" and isinstance(v, int) and v > 0]
    return FileValues(MappingProxyType(values), MappingProxyType(kinds), len(values) - texts, texts,
                      min(seeds) if seeds else None)


@dataclass
class TreeComparison:
    """Two trees of result files compared: which files differ and how, and every value of the differing ones."""

    precision: str
    tolerances: dict[str, float]
    files: list[str] = field(default_factory=list)          # on both sides
    missing_here: list[str] = field(default_factory=list)   # committed, not here
    not_committed: list[str] = field(default_factory=list)  # here, not committed
    bytes_differ: list[str] = field(default_factory=list)   # on both sides, other bytes
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why its numbers could not be read
    diffs: list[Difference] = field(default_factory=list)   # every value of the readable files whose bytes differ
    numbers: int = 0  # numbers compared (files with identical bytes included), nulls included
    texts: int = 0    # text values compared (flags, method names)

    @property
    def moved(self) -> list[Difference]:
        """The values beyond their tolerance."""
        return [d for d in self.diffs if not d.ok]

    @property
    def without_numbers(self) -> list[str]:
        """Files whose bytes differ and that hold nothing to compare but bytes (images, Markdown, lock files)."""
        return [f for f in self.bytes_differ if bytes_only(f)]

    @property
    def unknown(self) -> list[str]:
        """Files whose bytes differ and that are of no kind this check can read (they must be byte-identical)."""
        return [f for f in self.bytes_differ if not has_numbers(f) and not bytes_only(f)]


def compare_trees(committed: Reader, here: Reader, files: Iterable[str], precision: str,
                  seeds: int | None = None) -> TreeComparison:
    """Compare the result `files` of two trees read through `committed` and `here`, every number within the tolerance
    of its kind for results of `precision` over `seeds` seeds (default: the fewest any `seeds` entry reports, else 1).
    A file on one side only is reported; values are compared only in files whose bytes differ."""
    pending: list[tuple[str, FileValues, FileValues]] = []
    result = TreeComparison(precision, {})
    found_seeds: list[int] = []
    for path in sorted(set(files)):
        a, b = committed(path), here(path)
        if a is None or b is None:
            if a is not None:
                result.missing_here.append(path)
            elif b is not None:
                result.not_committed.append(path)
            continue
        result.files.append(path)
        if a != b:
            result.bytes_differ.append(path)
        if not has_numbers(path):
            continue
        try:
            old = file_values(path, a)
        except ValueError as err:
            result.unreadable[path] = f"{err} (as committed)"
            continue
        result.numbers, result.texts = result.numbers + old.numbers, result.texts + old.texts
        found_seeds += [old.seeds] if old.seeds else []
        if a == b:
            continue
        try:
            pending.append((path, old, file_values(path, b)))
        except ValueError as err:
            result.unreadable[path] = f"{err} (here)"
    result.tolerances = tolerances(precision, seeds or min(found_seeds, default=1))
    for path, old, new in pending:
        result.diffs += compare(old.values, new.values, result.tolerances, {**new.kinds, **old.kinds})
    return result


def _files(n: int) -> str:
    """'1 result file', '2 result files'."""
    return f"{n} result file{'s' if n != 1 else ''}"


def verdict(result: TreeComparison, byte_mode: bool, rev: str) -> tuple[bool, list[str], list[str]]:
    """Whether the results reproduce, with the lines to print (stdout, stderr): in byte mode every file must be
    byte-identical; in tolerance mode every number within its tolerance (a file on one side only, an unreadable one
    or one of an unknown kind whose bytes differ fails in both)."""
    out: list[str] = []
    err = [f"missing here (committed at {rev}): {f}" for f in result.missing_here]
    err += [f"not committed at {rev} (only here): {f}" for f in result.not_committed]
    err += list(result.unreadable.values())
    described = _files(len(result.files))
    if byte_mode:
        if not err and not result.bytes_differ:
            return True, [f"REPRODUCED: all {described} are byte-identical to {rev}"], []
        err = [f"NOT REPRODUCED: the results differ from {rev} on a machine that matches its provenance", *err]
        err += [f"bytes differ: {f}" for f in result.bytes_differ]
        exact = [replace(d, tolerance=0.0) for d in result.diffs]
        table = moved_table(exact, TABLE_ROWS)
        beyond = len(result.moved)
        err.append(f"numbers that differ ({beyond} of them beyond the tolerance of another CPU):\n{table}" if table
                   else "(no number differs: the bytes moved, the numbers did not)")
        return False, out, err
    spread = spread_by_kind(result.diffs)
    out.append(f"largest differences ({result.precision} results): " + (", ".join(
        f"{k} {v:.4f} (allowed {result.tolerances[k]:.4g})" for k, v in sorted(spread.items())) or "none"))
    read = [f for f in result.bytes_differ if has_numbers(f)]
    if read:
        out.append(f"bytes differ in {_files(len(read))} with numbers (each number compared within its tolerance):")
        out += [f"  {f}" for f in read]
    if result.without_numbers:
        out.append(f"bytes differ in {_files(len(result.without_numbers))} without numbers to compare (images, "
                   "Markdown, lock files: their bytes follow the numbers' last bits; not a failure in tolerance mode):")
        out += [f"  {f}" for f in result.without_numbers]
    err += [f"bytes differ in {f}, a kind of file whose numbers cannot be compared: it must be byte-identical"
            for f in result.unknown]
    moved = result.moved
    if moved:
        return False, out, [f"NOT REPRODUCED: {len(moved)} of {result.numbers + result.texts} numbers and text values "
                            f"moved beyond what a change of CPU does:", moved_table(moved, TABLE_ROWS), *err]
    if err:
        return False, out, [f"NOT REPRODUCED: the result files differ from {rev} in more than their numbers' last bits",
                            *err]
    values = f"{result.numbers} numbers and {result.texts} text values of {described}"
    out.append(f"REPRODUCED within tolerance: all {values} agree with {rev} "
               f"({'the bytes differ' if result.bytes_differ else 'and the bytes are identical too'})")
    return True, out, []
