"""Continual-learning metrics from the accuracy matrix R (R[i][j] = accuracy on task j after training task i).

For two tasks A then B (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018):
- average accuracy  ACC = mean_j R[B][j]                  (A and B after B)
- forgetting        F   = R[A][A] − R[B][A]               (max over earlier rows; one row here)
- backward transfer BWT = mean_{j<T} (R[T][j] − R[j][j])  = R[B][A] − R[A][A] = −F for two tasks
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import stats

TASKS = ("a", "b")


def accuracy_matrix(after_a: Mapping[str, float], after_b: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """R as {"after_a": {"a": .., "b": ..}, "after_b": {...}} from the test accuracies of θ_A and θ_B."""
    return {"after_a": {t: float(after_a[t]) for t in TASKS}, "after_b": {t: float(after_b[t]) for t in TASKS}}


def summarize(matrix: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Named scalars of a two-task accuracy matrix: the ones the README table shows."""
    a_after_a = matrix["after_a"]["a"]
    a_after_b = matrix["after_b"]["a"]
    b_after_b = matrix["after_b"]["b"]
    return {
        "acc_a_after_a": a_after_a,
        "acc_a_after_b": a_after_b,
        "acc_b_after_b": b_after_b,
        "forgetting": a_after_a - a_after_b,
        "bwt": a_after_b - a_after_a,
        "average_accuracy": (a_after_b + b_after_b) / 2,
    }


def method_report(after_a: Mapping[str, float], after_b: Mapping[str, float]) -> dict:
    """Everything reported for one regularizer: the scalars and the accuracy matrix."""
    matrix = accuracy_matrix(after_a, after_b)
    return {**summarize(matrix), "accuracy_matrix": matrix}


def joint_report(joint: Mapping[str, float]) -> dict[str, float]:
    """The multi-task upper bound: accuracy on A, on B, and their mean."""
    return {"acc_a": float(joint["a"]), "acc_b": float(joint["b"]), "average_accuracy": (joint["a"] + joint["b"]) / 2}


SCALARS = ["acc_a_after_a", "acc_a_after_b", "acc_b_after_b", "forgetting", "bwt", "average_accuracy"]
JOINT_SCALARS = ["acc_a", "acc_b", "average_accuracy"]


def mean_ci95(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and the half-width of its 95 % t-interval (None with a single value: no interval from one seed)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return {"mean": mean, "ci95": None}
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "ci95": half}


def aggregate(per_seed: Sequence[Mapping]) -> dict:
    """Mean and 95 % interval over seeds of every number in per-seed reports of the same shape (nested dicts)."""
    first = per_seed[0]
    out = {}
    for key, value in first.items():
        if isinstance(value, Mapping):
            out[key] = aggregate([report[key] for report in per_seed])
        else:
            out[key] = mean_ci95([report[key] for report in per_seed])
    return out


def per_seed_rows(reports: Mapping[int, Mapping]) -> list[dict]:
    """Tidy rows (seed, method, scalars) of per-seed reports {seed: {"methods": ..., "joint": ...}}."""
    rows = []
    for seed, report in reports.items():
        for method, numbers in report["methods"].items():
            rows.append({"seed": seed, "method": method, **{c: numbers[c] for c in SCALARS}})
        j = report["joint"]
        rows.append({"seed": seed, "method": "joint", "acc_a_after_a": j["acc_a"], "acc_a_after_b": j["acc_a"],
                     "acc_b_after_b": j["acc_b"], "forgetting": 0.0, "bwt": 0.0, "average_accuracy": j["average_accuracy"]})
    return rows


def summary_rows(rows: Sequence[Mapping]) -> list[dict]:
    """One row per method: mean and 95 % half-width over seeds of each scalar, from per_seed_rows."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        row: dict = {"method": method, "seeds": len(mine)}
        for column in SCALARS:
            summary = mean_ci95([r[column] for r in mine])
            row[f"{column}_mean"] = summary["mean"]
            row[f"{column}_ci95"] = summary["ci95"] if summary["ci95"] is not None else float("nan")
        out.append(row)
    return out


def paired_differences(rows: Sequence[Mapping], baseline: str, columns: Sequence[str] = SCALARS) -> dict:
    """Per method, the mean and 95 % interval over seeds of (method − baseline) on the same θ_A, and in how many
    seeds the method's average accuracy is higher: a paired comparison, tighter than comparing two intervals."""
    by_seed = {(r["seed"], r["method"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows if r["method"] == baseline})
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] not in (baseline, "joint")))
    out = {}
    for method in methods:
        diffs = {c: [by_seed[(s, method)][c] - by_seed[(s, baseline)][c] for s in seeds] for c in columns}
        out[method] = {c: mean_ci95(d) for c, d in diffs.items()}
        out[method]["seeds_better_on_average_accuracy"] = sum(d > 0 for d in diffs["average_accuracy"])
    return out


PER_SEED_COLUMNS = ["seed", "method", *SCALARS]
SUMMARY_COLUMNS = ["method", "seeds"] + [f"{c}_{s}" for c in SCALARS for s in ("mean", "ci95")]


# --- Headline: the few numbers `dvc metrics show` / `dvc metrics diff` / `dvc exp show` print ------------------------

HEADLINE = {"average": "average_accuracy", "A_after_B": "acc_a_after_b", "B_after_B": "acc_b_after_b",
            "forgetting": "forgetting"}
JOINT_HEADLINE = ("average", "A_after_B", "B_after_B")  # the joint model is trained on A and B at once: no forgetting


def headline_files(rows: Sequence[Mapping]) -> dict[str, dict[str, float | int]]:
    """The headline metrics as {file stem: numbers}, from per_seed_rows: per method (and joint) `<method>` holds the
    means over seeds and the number of seeds, `<method>.ci95` the half-widths of their 95 % t-intervals (only with
    two seeds or more: no interval from one seed, rather than a NaN). One file per method, all with the same keys,
    so that `dvc metrics show` prints one short row per method."""
    files: dict[str, dict[str, float | int]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        keys = JOINT_HEADLINE if method == "joint" else tuple(HEADLINE)
        stats = {key: mean_ci95([r[HEADLINE[key]] for r in mine]) for key in keys}
        files[method] = {**{key: s["mean"] for key, s in stats.items()}, "seeds": len(mine)}
        if len(mine) > 1:
            files[f"{method}.ci95"] = {key: s["ci95"] for key, s in stats.items()}
    return files


def per_seed_headline(rows: Sequence[Mapping]) -> dict[int, dict[str, dict[str, float]]]:
    """{seed: {method: headline numbers of that seed}}: files keyed by seed, so that an experiment on seed 0 alone
    compares with seed 0 of another revision (`dvc metrics diff --targets metrics/seeds/0`)."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for r in rows:
        keys = JOINT_HEADLINE if r["method"] == "joint" else tuple(HEADLINE)
        out.setdefault(r["seed"], {})[r["method"]] = {key: float(r[HEADLINE[key]]) for key in keys}
    return out
