"""Continual-learning metrics from the accuracy matrix R (R[i][j] = accuracy on task j after training task i).

For two tasks A then B (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018):
- average accuracy  ACC = mean_j R[B][j]                  (A and B after B)
- forgetting        F   = R[A][A] − R[B][A]               (max over earlier rows; one row here)
- backward transfer BWT = mean_{j<T} (R[T][j] − R[j][j])  = R[B][A] − R[A][A] = −F for two tasks
"""

from __future__ import annotations

from typing import Mapping

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


TABLE_COLUMNS = ["method", "acc_a_after_a", "acc_a_after_b", "acc_b_after_b", "forgetting", "bwt", "average_accuracy"]


def table_rows(report: Mapping[str, Mapping]) -> list[dict]:
    """Tidy rows (one per method, then joint) for the CSV table; joint has A/B accuracy in the 'after B' columns."""
    rows = [{"method": m, **{c: r[c] for c in TABLE_COLUMNS[1:]}} for m, r in report["methods"].items()]
    j = report["joint"]
    rows.append({
        "method": "joint", "acc_a_after_a": j["acc_a"], "acc_a_after_b": j["acc_a"], "acc_b_after_b": j["acc_b"],
        "forgetting": 0.0, "bwt": 0.0, "average_accuracy": j["average_accuracy"],
    })
    return rows
