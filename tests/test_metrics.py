"""Continual-learning metrics as defined in the literature, and the 95 % t-interval over seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cllab import io, metrics


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


def test_evaluate_stage_aggregates_the_recorded_accuracies_without_starting_tensorflow(root, tmp_path):
    """stages.evaluate reads evals/<seed>/<model>.json only: means over seeds land in metrics/, and TF is never imported
    (its ~4 s start-up would be paid on every λ change)."""
    import json
    import subprocess
    import sys

    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(seeds=[0, 1], methods=["none", "l2"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    acc = {"theta_a": (0.98, 0.10), "joint": (0.97, 0.96), "none": (0.30, 0.95), "l2": (0.70, 0.90)}
    for seed in (0, 1):
        for name, (a, b) in acc.items():
            shift = 0.02 * seed
            path = tmp_path / "evals" / str(seed) / f"{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"test": {"a": a + shift, "b": b}, "val": {"a": a, "b": b - shift}}))
    # importing a module whose sys.modules entry is None raises ImportError: the stage fails if it touches TF/Keras
    code = ("import runpy, sys; sys.modules.update(tensorflow=None, keras=None); sys.argv = ['evaluate']\n"
            "runpy.run_module('stages.evaluate', run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    test = json.loads((tmp_path / "metrics" / "test.json").read_text())
    assert test["seeds"] == 2
    assert test["methods"]["l2"]["acc_a_after_b"]["mean"] == pytest.approx(0.71)
    assert test["methods"]["none"]["forgetting"]["mean"] == pytest.approx(0.68)
    assert test["joint"]["acc_b"]["mean"] == pytest.approx(0.96)
    validation = json.loads((tmp_path / "metrics" / "validation.json").read_text())
    assert validation["methods"]["l2"]["acc_b_after_b"]["mean"] == pytest.approx(0.89)
    (tmp_path / "evals" / "1" / "l2.json").unlink()
    run = subprocess.run([sys.executable, "-m", "stages.evaluate"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 1 and run.stderr.strip() == "error: evals/1/l2.json: missing (run dvc repro)"


def _rows(seeds):
    reports = {s: {"methods": {"ewc": metrics.method_report({"a": 0.98, "b": 0.1}, {"a": 0.8 + s / 100, "b": 0.9}),
                               "l2": metrics.method_report({"a": 0.98, "b": 0.1}, {"a": 0.7, "b": 0.92})},
                   "joint": metrics.joint_report({"a": 0.97, "b": 0.96})} for s in seeds}
    return metrics.per_seed_rows(reports)


def test_headline_is_one_short_file_per_method_with_the_interval_beside_it():
    files = metrics.headline_files(metrics.per_seed_headline(_rows([0, 1, 2])))
    assert set(files) == {"ewc", "ewc.ci95", "l2", "l2.ci95", "joint", "joint.ci95"}
    assert set(files["ewc"]) == {"average", "A_after_B", "B_after_B", "forgetting", "seeds"}
    assert set(files["ewc.ci95"]) == {"average", "A_after_B", "B_after_B", "forgetting"}
    assert set(files["joint"]) == {"average", "A_after_B", "B_after_B", "seeds"}  # no forgetting: trained on both
    assert files["ewc"]["A_after_B"] == pytest.approx(0.81) and files["ewc"]["seeds"] == 3
    assert files["ewc"]["forgetting"] == pytest.approx(0.98 - 0.81)
    assert files["ewc.ci95"]["A_after_B"] == pytest.approx(metrics.mean_ci95([0.80, 0.81, 0.82])["ci95"])
    assert files["l2.ci95"]["A_after_B"] == pytest.approx(0.0, abs=1e-12)


def test_one_seed_gives_no_interval_file_rather_than_a_nan():
    files = metrics.headline_files(metrics.per_seed_headline(_rows([3])))
    assert set(files) == {"ewc", "l2", "joint"} and files["ewc"]["seeds"] == 1
    assert all(value == value for numbers in files.values() for value in numbers.values())  # no NaN anywhere


def test_the_joint_model_has_no_forgetting_and_one_seed_no_interval_as_empty_cells_not_zeros_or_nan(tmp_path):
    """The joint model is trained on A and B at once: no "A after A", so its forgetting and BWT are undefined (an
    empty cell), not 0; one seed's interval is empty as well, not 'nan'. The tables read back as None."""
    rows = _rows([0, 1])
    joint = next(r for r in rows if r["method"] == "joint")
    assert joint["acc_a_after_a"] is None and joint["forgetting"] is None and joint["bwt"] is None
    assert joint["acc_a_after_b"] == 0.97 and joint["average_accuracy"] == pytest.approx(0.965)
    summary = {r["method"]: r for r in metrics.summary_rows(rows)}
    assert summary["joint"]["forgetting_mean"] is None and summary["joint"]["forgetting_ci95"] is None
    assert summary["joint"]["acc_b_after_b_mean"] == pytest.approx(0.96) and summary["joint"]["acc_b_after_b_ci95"] == 0
    assert summary["ewc"]["forgetting_mean"] == pytest.approx(0.98 - 0.805)
    one = {r["method"]: r for r in metrics.summary_rows(_rows([0]))}
    assert one["ewc"]["average_accuracy_ci95"] is None and one["ewc"]["average_accuracy_mean"] == pytest.approx(0.85)
    io.save_csv(tmp_path / "t.csv", metrics.summary_rows(_rows([0])), metrics.SUMMARY_COLUMNS)
    text = (tmp_path / "t.csv").read_text()
    assert "nan" not in text and "None" not in text
    assert text.splitlines()[-1].startswith("joint,1,,,0.970000,,0.960000,,,,,,0.965000,")
    back = {r["method"]: r for r in io.load_csv(tmp_path / "t.csv")}
    assert back["joint"]["forgetting_mean"] is None and back["joint"]["acc_a_after_b_mean"] == 0.97
    assert back["ewc"]["average_accuracy_ci95"] is None


def test_per_seed_headline_is_keyed_by_seed_so_seed_0_meets_seed_0():
    five, one = metrics.per_seed_headline(_rows([0, 1, 2, 3, 4])), metrics.per_seed_headline(_rows([0]))
    assert set(five) == {0, 1, 2, 3, 4} and set(one) == {0}
    assert one[0] == five[0]
    assert set(one[0]) == {"ewc", "l2", "joint"} and one[0]["ewc"]["A_after_B"] == pytest.approx(0.80)


def test_dvc_metrics_show_of_the_committed_results_fits_a_120_column_terminal(root):
    """Plain `dvc metrics show` in the project (the two-task headline, the permuted-MNIST pipelines' headlines): one
    row per headline file, every line within 120 characters (DVC prints the table unwrapped, whatever the terminal)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show"], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any(line.startswith("metrics/headline/ewc.json ") for line in lines)
    assert any(line.startswith("sequence/paper/metrics/headline/ewc_online.ci95.json ") for line in lines)
    widest = max(lines, key=len)
    assert len(widest) <= 120, f"{len(widest)} characters: {widest}"
