"""The three-scenario report stage (stages/scenario_report.py) on made-up runs: what it writes, that the numbers are
the runs' (averages, intervals, paired differences, the published ranges beside them), and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import without_variants

SEEDS, METHODS, SCENARIOS = [0, 1], ["none", "ewc", "er"], ["task", "class"]


def _matrix(scenario: str, method: str, seed: int) -> list[list[float]]:
    """A 5×5 R: tasks learned at 0.99; later kept at `keep` (fine-tuning forgets in class-IL), unseen at 0.5 or 0."""
    keep = {"none": 0.6, "ewc": 0.9, "er": 0.95}[method] if scenario == "task" else {"none": 0.0, "ewc": 0.0,
                                                                                      "er": 0.9}[method]
    keep += 0.01 * seed
    return [[0.99 if j == i else keep if j < i else (0.0 if scenario == "class" else 0.5) for j in range(5)]
            for i in range(5)]


@pytest.fixture
def project(tmp_path: Path, root: Path) -> Path:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["scenarios"].update(seeds=SEEDS, methods=METHODS, scenarios=SCENARIOS)
    without_variants(params)  # none runs here unless a test says so (_with_variant)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "sequence" / "paper").mkdir(parents=True)
    (tmp_path / "sequence" / "paper" / "params.yaml").write_text((root / "sequence/paper/params.yaml").read_text())
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "anchors.yaml").write_text((root / "scenarios/anchors.yaml").read_text())
    for s in SCENARIOS:
        for seed in SEEDS:
            d = tmp_path / "scenarios" / "runs" / s / str(seed)
            d.mkdir(parents=True)
            for m in METHODS:
                r = _matrix(s, m, seed)
                (d / f"{m}.json").write_text(json.dumps({"R": {"test": r, "val": [row[:i + 1] for i, row in enumerate(r)]},
                                                         "initial": {"test": [0.5] * 5}, "max_importance": [0] * 5}))
            (d / "joint.json").write_text(json.dumps({"R_joint": {"test": [0.98 + 0.01 * seed] * 5, "val": [0.98] * 5}}))
    return tmp_path


def _report(project: Path, root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "stages.scenario_report"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_report_writes_every_number_from_the_runs_beside_the_published(project: Path, root: Path):
    done = _report(project, root)
    assert done.returncode == 0, done.stderr
    out = project / "scenarios"
    headline = json.loads((out / "metrics/headline/class/er.json").read_text())
    assert headline == {"average": pytest.approx((0.905 * 4 + 0.99) / 5), "forgetting": pytest.approx(0.09 - 0.005),
                        "seeds": 2}
    assert (out / "metrics/headline/class/er.ci95.json").is_file()  # two seeds: an interval
    assert json.loads((out / "metrics/seeds/task/1/none.json").read_text())["average"] == pytest.approx(
        (0.61 * 4 + 0.99) / 5)
    full = json.loads((out / "metrics/full.json").read_text())
    # FWT reads R[j−1][j]: 0 by construction in class-incremental learning (task j's classes have no live unit yet)
    assert full["scenarios"]["class"]["methods"]["er"]["fwt"] is None
    assert full["scenarios"]["task"]["methods"]["er"]["fwt"]["mean"] is not None
    paired = full["scenarios"]["class"]["paired_to_fine_tune"]["er"]
    assert paired["mean"] == pytest.approx(0.9 * 4 / 5) and paired["seeds_better"] == 2
    rows = (out / "metrics/summary.csv").read_text().splitlines()
    assert rows[0].startswith("scenario,method,average_mean") and len(rows) == 1 + len(SCENARIOS) * (len(METHODS) + 1)
    assert any(r.startswith("class,er,") and r.endswith(",0.888000,0.908000") for r in rows)
    for name in ("summary", "task", "class", "matrices_task", "matrices_class"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    text = (out / "report.md").read_text()
    assert "| replay, class-balanced | 0.962 ± " in text and "| 0.888–0.908 |" in text
    assert "(2/2 seeds better)" in text
    again = out / "report.md"
    before = again.read_bytes()
    assert _report(project, root).returncode == 0 and again.read_bytes() == before  # byte-stable


def test_a_missing_run_is_one_line_naming_it(project: Path, root: Path):
    (project / "scenarios/runs/class/1/ewc.json").unlink()
    done = _report(project, root)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "scenarios/runs/class/1/ewc.json: missing" in lines[0]
    assert not (project / "scenarios/report.md").exists()


def test_the_matrix_sums_match_numpy(project: Path, root: Path):
    assert _report(project, root).returncode == 0
    full = json.loads((project / "scenarios/metrics/full.json").read_text())
    ewc = full["scenarios"]["task"]["methods"]["ewc"]
    expected = np.mean([_matrix("task", "ewc", s) for s in SEEDS], axis=0)
    np.testing.assert_allclose(ewc["accuracy_matrix_mean"], expected, rtol=1e-6)


def _with_variant(project: Path, write_runs: bool = True) -> None:
    """Variant sgd runs EWC in task-IL, keeping the old tasks at 0.95 where the main EWC run keeps 0.9."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["scenarios"]["variants"]["sgd"].update(scenarios=["task"], methods=["ewc"],
                                                  method={"ewc": {"task": {"lambda": 5}}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for seed in SEEDS if write_runs else ():
        d = project / "scenarios" / "variants" / "sgd" / "task" / str(seed)
        d.mkdir(parents=True)
        r = [[0.99 if j == i else 0.95 + 0.01 * seed if j < i else 0.5 for j in range(5)] for i in range(5)]
        (d / "ewc.json").write_text(json.dumps({"R": {"test": r, "val": [row[:i + 1] for i, row in enumerate(r)]},
                                                "initial": {"test": [0.5] * 5}, "max_importance": [0] * 5}))


def test_a_variant_is_set_beside_the_main_run_of_its_method_seed_by_seed(project: Path, root: Path):
    _with_variant(project)
    done = _report(project, root)
    assert done.returncode == 0, done.stderr
    full = json.loads((project / "scenarios/metrics/full.json").read_text())
    entry = full["variants"]["sgd"]["task"]
    assert entry["own"] == {"ewc": {"lambda": 5}} and entry["train"]["optimizer"]["name"] == "sgd"
    assert entry["methods"]["ewc"]["average_accuracy"]["mean"] == pytest.approx((0.955 * 4 + 0.99) / 5)
    diff = entry["paired_to_main"]["ewc"]
    assert diff["mean"] == pytest.approx(0.05 * 4 / 5) and diff["ci95"] == pytest.approx(0) and diff["seeds_better"] == 2
    text = (project / "scenarios/report.md").read_text()
    assert "## Variants" in text and "| sgd | task-IL | EWC | sgd, learning rate 0.1; λ 5 |" in text
    assert "+0.040 ± 0.000 (2/2 seeds better)" in text


def test_a_variant_without_its_runs_is_one_line_naming_the_missing_file(project: Path, root: Path):
    _with_variant(project, write_runs=False)
    done = _report(project, root)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "scenarios/variants/sgd/task/0/ewc.json: missing" in errors[0], done.stderr
