"""Continual-learning metrics as defined in the literature, and the 95 % t-interval over seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cllab import metrics


def test_two_task_metrics_follow_the_accuracy_matrix():
    report = metrics.method_report({"a": 0.98, "b": 0.1}, {"a": 0.6, "b": 0.9})
    assert report["accuracy_matrix"] == {"after_a": {"a": 0.98, "b": 0.1}, "after_b": {"a": 0.6, "b": 0.9}}
    assert report["forgetting"] == pytest.approx(0.38)
    assert report["bwt"] == pytest.approx(-0.38)
    assert report["average_accuracy"] == pytest.approx(0.75)


def test_interval_is_the_students_t_interval_of_the_mean():
    values = [0.81, 0.84, 0.80, 0.86, 0.83]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    summary = metrics.mean_ci95(values)
    assert summary["mean"] == pytest.approx(np.mean(values))
    assert summary["ci95"] == pytest.approx((high - low) / 2)
    assert metrics.mean_ci95([0.5]) == {"mean": 0.5, "ci95": None}


def test_aggregate_keeps_the_shape_of_the_reports():
    reports = [{"m": {"x": 1.0, "inner": {"y": 2.0}}}, {"m": {"x": 3.0, "inner": {"y": 4.0}}}]
    out = metrics.aggregate(reports)
    assert out["m"]["x"]["mean"] == 2.0 and out["m"]["inner"]["y"]["mean"] == 3.0


def test_paired_difference_to_the_baseline_is_per_seed():
    rows = []
    for seed, (l2, ewc) in enumerate([(0.80, 0.83), (0.70, 0.74), (0.90, 0.91)]):
        for method, value in (("l2", l2), ("ewc", ewc)):
            rows.append({"seed": seed, "method": method, **{c: value for c in metrics.SCALARS}})
    paired = metrics.paired_differences(rows, baseline="l2")
    diffs = [0.03, 0.04, 0.01]
    assert paired["ewc"]["average_accuracy"]["mean"] == pytest.approx(np.mean(diffs))
    assert paired["ewc"]["average_accuracy"]["ci95"] == pytest.approx(metrics.mean_ci95(diffs)["ci95"])
    assert paired["ewc"]["seeds_better_on_average_accuracy"] == 3
    assert set(paired) == {"ewc"}
