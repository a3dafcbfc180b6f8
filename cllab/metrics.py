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
        j = report["joint"]  # trained on A and B at once: no "A after A", hence no forgetting or BWT (None, not 0)
        rows.append({"seed": seed, "method": "joint", "acc_a_after_a": None, "acc_a_after_b": j["acc_a"],
                     "acc_b_after_b": j["acc_b"], "forgetting": None, "bwt": None,
                     "average_accuracy": j["average_accuracy"]})
    return rows


def summary_rows(rows: Sequence[Mapping]) -> list[dict]:
    """One row per method: mean and 95 % half-width over seeds of each scalar, from per_seed_rows. None where a
    number is undefined: a scalar the method does not have (the joint model's forgetting), the interval of one seed
    (an empty cell in the CSV, not a NaN)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        row: dict = {"method": method, "seeds": len(mine)}
        for column in SCALARS:
            values = [r[column] for r in mine]
            summary = mean_ci95(values) if None not in values else {"mean": None, "ci95": None}
            row[f"{column}_mean"], row[f"{column}_ci95"] = summary["mean"], summary["ci95"]
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


def headline_files(per_seed: Mapping[int, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float | int]]:
    """The headline metrics as {file stem: numbers}, from each seed's headline numbers (per_seed_headline, or
    sequence_per_seed_headline): per method (and joint) `<method>` holds their means over seeds and the number of
    seeds, `<method>.ci95` the half-widths of their 95 % t-intervals (only with two seeds or more: no interval from
    one seed, rather than a NaN). One file per method, all with the same keys, so that `dvc metrics show` prints one
    short row per method."""
    files: dict[str, dict[str, float | int]] = {}
    for method in dict.fromkeys(m for by_method in per_seed.values() for m in by_method):
        mine = [by_method[method] for by_method in per_seed.values() if method in by_method]
        stats = {key: mean_ci95([numbers[key] for numbers in mine]) for key in mine[0]}
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


def per_seed_files(per_seed: Mapping[int, Mapping[str, Mapping[str, float]]]) -> dict[str, Mapping[str, float]]:
    """Each seed's headline numbers as {"<seed>/<method>": numbers}: the files of `metrics/seeds/`."""
    return {f"{seed}/{method}": numbers for seed, by_method in per_seed.items() for method, numbers in by_method.items()}


# --- A sequence of T tasks (permuted MNIST): metrics from the T×T accuracy matrix ------------------------------------


def _unit_interval_array(values, name: str, ndim: int) -> np.ndarray:
    """`values` as a float array of `ndim` dimensions with finite entries in [0, 1], else a one-line ValueError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric array, not ragged or non-numeric ({type(error).__name__})") from None
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {array.ndim}-D with shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite entries (NaN or inf) at {np.argwhere(~np.isfinite(array)).tolist()}")
    outside = (array < 0) | (array > 1)
    if np.any(outside):
        raise ValueError(f"{name} has entries outside [0, 1] at {np.argwhere(outside).tolist()}: "
                         f"{array[outside].tolist()}")
    return array


def sequence_report(R: Sequence[Sequence[float]], initial: Sequence[float] | None = None) -> dict:
    """Metrics of a sequence of T tasks from R (T×T, R[i][j] = accuracy on task j after training task i, 0-based;
    Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018):
    - average_after_task[i] = mean_{j<=i} R[i][j]   (the curve against the number of tasks, Kirkpatrick et al. Fig. 2B)
    - average_accuracy      = mean_j R[T-1][j]
    - bwt                   = mean_{j<T-1} (R[T-1][j] − R[j][j])                   (None for T = 1)
    - forgetting            = mean_{j<T-1} max_{j<=l<=T-2} (R[l][j] − R[T-1][j])   (None for T = 1)
    - fwt                   = mean_{j>=1} (R[j-1][j] − initial[j])  with `initial` the accuracies of the randomly
                              initialised model (None without it, or for T = 1)
    Raises ValueError if R is not a square 2-D matrix with T >= 1 and finite entries in [0, 1], or `initial` is not
    of length T with such entries."""
    r = _unit_interval_array(R, "R", ndim=2)
    t = r.shape[0]
    if r.shape[1] != t:
        raise ValueError(f"R must be square (T×T), got shape {r.shape}")
    if t < 1:
        raise ValueError("R must hold at least one task (T >= 1), got T = 0")
    b = None
    if initial is not None:
        b = _unit_interval_array(initial, "initial", ndim=1)
        if len(b) != t:
            raise ValueError(f"initial must have length T = {t} (one accuracy per task), got length {len(b)}")
    last = r[t - 1]
    bwt = forgetting = fwt = None
    if t >= 2:
        earlier = np.arange(t - 1)
        bwt = float(np.mean(last[:-1] - r[earlier, earlier]))
        forgetting = float(np.mean([np.max(r[j:t - 1, j]) - last[j] for j in earlier]))
        if b is not None:
            fwt = float(np.mean([r[j - 1, j] - b[j] for j in range(1, t)]))
    return {
        "average_after_task": [float(np.mean(r[i, : i + 1])) for i in range(t)],
        "average_accuracy": float(np.mean(last)),
        "bwt": bwt,
        "forgetting": forgetting,
        "fwt": fwt,
        "accuracy_matrix": r.tolist(),
    }


# The sequence's headline: the two-task headline's own keys, where they mean the same (average accuracy over all tasks
# after the last one; forgetting), so that the two experiments share `dvc metrics show`'s columns and the table stays
# within 120 characters. BWT (≈ −forgetting here) and FWT (≈ 0 between permutations) are in full.json and the report.
SEQUENCE_HEADLINE = {"average": "average_accuracy", "forgetting": "forgetting"}


def sequence_run_report(run: Mapping, forward_transfer: bool = True) -> dict:
    """One run of a sequence (stages/sequence_run.py's JSON): sequence_report on the test matrix with the initial
    model's accuracies, plus the validation average accuracy after each task (over the tasks seen so far), the
    number hyper-parameters are chosen by. `forward_transfer=False`: FWT is None, for a setting where R[j−1][j] is 0
    by construction (class-incremental learning: no live unit is task j's class before task j)."""
    report = sequence_report(run["R"]["test"], run["initial"]["test"] if forward_transfer else None)
    val = run["R"]["val"]
    report["val_average_after_task"] = [float(np.mean(val[i][: i + 1])) for i in range(len(val))]
    report["val_average_accuracy"] = report["val_average_after_task"][-1]
    return report


def sequence_summary(reports: Mapping[str, Sequence[Mapping]]) -> dict:
    """Per method, mean and 95 % interval over seeds of the scalars, of the average accuracy after each task (test
    and validation) and of the accuracy on the first task after each task, and the mean R; `reports[method]` is one sequence_run_report per seed."""
    out = {}
    for method, per_seed in reports.items():
        r = np.mean([p["accuracy_matrix"] for p in per_seed], axis=0)
        entry: dict = {"seeds": len(per_seed), "accuracy_matrix_mean": r.tolist()}
        for key in ("average_accuracy", "val_average_accuracy", "bwt", "forgetting", "fwt"):
            values = [p[key] for p in per_seed]
            entry[key] = mean_ci95(values) if all(v is not None for v in values) else None
        for key in ("average_after_task", "val_average_after_task"):
            entry[key] = [mean_ci95([p[key][i] for p in per_seed]) for i in range(len(per_seed[0][key]))]
        entry["first_task_after_task"] = [mean_ci95([p["accuracy_matrix"][i][0] for p in per_seed])
                                          for i in range(len(r))]
        out[method] = entry
    return out


def sequence_per_seed_headline(reports: Mapping[str, Mapping[int, Mapping]],
                               joint: Mapping[int, Sequence[float]]) -> dict[int, dict[str, dict[str, float]]]:
    """{seed: {method: that seed's headline numbers}}, like per_seed_headline: SEQUENCE_HEADLINE's keys from
    `reports[method][seed]` (sequence_run_report; forgetting left out with one task, rather than a None), and for
    `joint` the average test accuracy over all tasks of `joint[seed]`; so that an experiment on seed 0 alone compares
    with seed 0 of another revision. headline_files makes the headline from it."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for method, by_seed in reports.items():
        for seed, report in by_seed.items():
            out.setdefault(seed, {})[method] = {key: float(report[name]) for key, name in SEQUENCE_HEADLINE.items()
                                                if report[name] is not None}
    for seed, row in joint.items():
        out.setdefault(seed, {})["joint"] = {"average": float(np.mean(row))}
    return out


def paired_average_differences(reports: Mapping[str, Mapping[int, Mapping]], baseline: str) -> dict:
    """Per method, mean and 95 % interval over seeds of (method − baseline) in average accuracy after the last task,
    seed by seed (the methods of a seed start from the same initial weights and learn the first task alike), and in
    how many seeds the method is better: `reports[method][seed]` are sequence_run_report's."""
    seeds = sorted(reports[baseline])
    out = {}
    for method, by_seed in reports.items():
        if method == baseline:
            continue
        diffs = [by_seed[s]["average_accuracy"] - reports[baseline][s]["average_accuracy"] for s in seeds]
        out[method] = {**mean_ci95(diffs), "seeds_better": int(sum(d > 0 for d in diffs)), "seeds": len(seeds)}
    return out
