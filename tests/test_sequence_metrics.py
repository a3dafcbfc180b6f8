"""Metrics of a sequence of T tasks (permuted MNIST) from the T×T accuracy matrix R[i][j]."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cllab import metrics

R3 = [[0.90, 0.20, 0.10],
      [0.70, 0.80, 0.30],
      [0.60, 0.50, 0.95]]


def test_three_tasks_by_hand():
    report = metrics.sequence_report(R3, initial=[0.10, 0.10, 0.12])
    assert report["average_after_task"] == pytest.approx([0.90, (0.70 + 0.80) / 2, (0.60 + 0.50 + 0.95) / 3])
    assert report["average_accuracy"] == pytest.approx((0.60 + 0.50 + 0.95) / 3)
    assert report["bwt"] == pytest.approx(((0.60 - 0.90) + (0.50 - 0.80)) / 2)  # -0.3
    assert report["forgetting"] == pytest.approx(((0.90 - 0.60) + (0.80 - 0.50)) / 2)  # 0.3
    assert report["fwt"] == pytest.approx(((0.20 - 0.10) + (0.30 - 0.12)) / 2)  # 0.14
    assert report["accuracy_matrix"] == R3
    assert all(type(x) is float for row in report["accuracy_matrix"] for x in row)
    assert set(report) == {"average_after_task", "average_accuracy", "bwt", "forgetting", "fwt", "accuracy_matrix"}


def test_fwt_is_none_without_initial_accuracies():
    assert metrics.sequence_report(R3)["fwt"] is None


def test_one_task_has_no_bwt_nor_forgetting():
    report = metrics.sequence_report([[0.97]], initial=[0.1])
    assert report["average_after_task"] == [pytest.approx(0.97)]
    assert report["average_accuracy"] == pytest.approx(0.97)
    assert report["bwt"] is None and report["forgetting"] is None and report["fwt"] is None
    assert report["accuracy_matrix"] == [[0.97]]


@pytest.mark.parametrize("after_a, after_b", [
    ({"a": 0.98, "b": 0.10}, {"a": 0.60, "b": 0.90}),
    ({"a": 0.95, "b": 0.12}, {"a": 0.97, "b": 0.93}),  # A improves after B: negative forgetting, positive bwt
    ({"a": 0.50, "b": 0.50}, {"a": 0.50, "b": 0.50}),
])
def test_two_tasks_agree_with_the_two_task_summary(after_a, after_b):
    two = metrics.summarize(metrics.accuracy_matrix(after_a, after_b))
    seq = metrics.sequence_report([[after_a["a"], after_a["b"]], [after_b["a"], after_b["b"]]])
    assert seq["average_accuracy"] == pytest.approx(two["average_accuracy"])
    assert seq["bwt"] == pytest.approx(two["bwt"])
    assert seq["forgetting"] == pytest.approx(two["forgetting"])  # R[A][A] − R[B][A]
    assert seq["average_after_task"] == pytest.approx([two["acc_a_after_a"], two["average_accuracy"]])


def test_forgetting_uses_the_best_earlier_accuracy_not_the_diagonal():
    # task 0: 0.60 after learning it, rises to 0.90 after task 1, falls to 0.50 after task 2
    r = [[0.60, 0.10, 0.10],
         [0.90, 0.90, 0.10],
         [0.50, 0.85, 0.90]]
    report = metrics.sequence_report(r)
    assert report["forgetting"] == pytest.approx(((0.90 - 0.50) + (0.90 - 0.85)) / 2)  # 0.225
    assert report["forgetting"] != pytest.approx(((0.60 - 0.50) + (0.90 - 0.85)) / 2)  # diagonal would give 0.075
    assert report["bwt"] == pytest.approx(((0.50 - 0.60) + (0.85 - 0.90)) / 2)  # bwt stays on the diagonal


def test_accepts_a_numpy_matrix_of_ten_tasks():
    rng = np.random.default_rng(0)
    r = rng.uniform(0.0, 1.0, size=(10, 10))
    report = metrics.sequence_report(r, initial=np.full(10, 0.1))
    assert len(report["average_after_task"]) == 10
    assert report["average_accuracy"] == pytest.approx(r[-1].mean())
    assert report["fwt"] == pytest.approx(np.mean([r[j - 1, j] - 0.1 for j in range(1, 10)]))
    assert report["forgetting"] == pytest.approx(np.mean([r[j:9, j].max() - r[9, j] for j in range(9)]))


@pytest.mark.parametrize("R, initial, message", [
    ([[0.9, 0.1, 0.1], [0.8, 0.9, 0.1]], None, "square"),
    ([0.9, 0.8], None, "2-D"),
    (np.zeros((0, 0)), None, "at least one task"),
    ([[0.9, 0.1], [1.2, 0.9]], None, "outside [0, 1]"),
    ([[0.9, 0.1], [-0.1, 0.9]], None, "outside [0, 1]"),
    ([[0.9, 0.1], [math.nan, 0.9]], None, "non-finite"),
    ([[0.9, 0.1], [math.inf, 0.9]], None, "non-finite"),
    ([[0.9, 0.1], [0.8]], None, "ragged"),
    ([[0.9, 0.1], [0.8, 0.9]], [0.1, 0.1, 0.1], "initial must have length T = 2"),
    ([[0.9, 0.1], [0.8, 0.9]], [0.1, math.nan], "initial has non-finite"),
])
def test_bad_inputs_raise_a_one_line_error_naming_the_problem(R, initial, message):
    with pytest.raises(ValueError) as error:
        metrics.sequence_report(R, initial=initial)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_sequence_headline_shares_the_two_task_headline_columns():
    """The sequence's headline files carry the two-task headline's keys (average, forgetting, seeds) and nothing
    else, so `dvc metrics show` of both experiments is one narrow table; the interval beside them from two seeds."""
    reports = [metrics.sequence_run_report({"R": {"test": r, "val": r}, "initial": {"test": [0.1, 0.1, 0.1]}})
               for r in (R3, (np.array(R3) - 0.02).tolist())]
    summary = metrics.sequence_summary({"ewc": reports, "none": reports[:1]})
    per_seed = metrics.sequence_per_seed_headline({"ewc": dict(enumerate(reports)), "none": {0: reports[0]}},
                                                  {0: [0.97, 0.96, 0.95], 1: [0.96, 0.96, 0.96]})
    files = metrics.headline_files(per_seed)
    assert set(files) == {"ewc", "ewc.ci95", "none", "joint", "joint.ci95"}  # one seed of none: no interval
    two_task = metrics.headline_files(metrics.per_seed_headline(metrics.per_seed_rows({0: {
        "methods": {"ewc": metrics.method_report({"a": 0.98, "b": 0.1}, {"a": 0.8, "b": 0.9})},
        "joint": metrics.joint_report({"a": 0.97, "b": 0.96})}})))
    assert set(files["ewc"]) == {"average", "forgetting", "seeds"} <= set(two_task["ewc"])
    assert set(files["ewc.ci95"]) == {"average", "forgetting"}
    assert files["ewc"]["average"] == pytest.approx((0.6 + 0.5 + 0.95 + 0.58 + 0.48 + 0.93) / 6)
    assert files["ewc"]["forgetting"] == pytest.approx(summary["ewc"]["forgetting"]["mean"])
    assert files["ewc"]["seeds"] == 2 and files["none"]["seeds"] == 1
    assert set(files["joint"]) == {"average", "seeds"} and files["joint"]["average"] == pytest.approx(0.96)


def test_sequence_per_seed_headline_is_keyed_by_seed():
    one = metrics.sequence_run_report({"R": {"test": R3, "val": R3}, "initial": {"test": [0.1, 0.1, 0.1]}})
    single = metrics.sequence_run_report({"R": {"test": [[0.9]], "val": [[0.9]]}, "initial": {"test": [0.1]}})
    out = metrics.sequence_per_seed_headline({"ewc": {0: one, 4: single}}, {0: [0.97, 0.95, 0.96], 4: [0.9]})
    assert set(out) == {0, 4}
    assert out[0]["ewc"] == {"average": pytest.approx((0.6 + 0.5 + 0.95) / 3), "forgetting": pytest.approx(0.3)}
    assert out[4]["ewc"] == {"average": 0.9}  # one task: no forgetting, rather than a None in a metrics file
    assert out[0]["joint"] == {"average": pytest.approx(0.96)} and out[4]["joint"] == {"average": 0.9}
