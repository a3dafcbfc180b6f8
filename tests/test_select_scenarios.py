"""scripts/select_scenarios.py, the three scenarios' λ selection on validation data: a bad override stops in one line
before any training, and a run prints its CSV row with validation R (triangular, its rows' means the averages)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import run_script
from test_pipeline import put_mnist


@pytest.mark.parametrize("flags,message", [
    (["--grid", "rwalk=1"], "error: --grid method 'rwalk' is not one of none,"),
    (["--grid", "ewc=-1"], "error: --grid ewc: each λ must be"),
    (["--grid", "ewc="], "error: --grid ewc: each λ must be"),
    (["--grid", "ewc=1", "--variant", "nope"], "error: --variant 'nope' is not one of scenarios.variants:"),
    (["--grid", "ewc=1", "--iterations", "0"], "scenarios.train.iterations must be"),
])
def test_a_bad_argument_stops_in_one_line_before_any_training(root: Path, flags, message):
    done = run_script(root, "scripts.select_scenarios", *flags)
    assert done.returncode != 0 and done.stdout == ""
    assert message in done.stderr.strip().splitlines()[-1]


def test_a_run_prints_its_row_with_the_validation_averages_and_r(root: Path, mnist_dir: Path, tfds_dir: Path,
                                                                  tmp_path: Path):
    params = yaml.safe_load((root / "params.yaml").read_text())
    put_mnist(mnist_dir, tmp_path)
    params["prepare"]["tfds_dir"] = str(tfds_dir)
    params["scenarios"]["model"].update(hidden_units=16, hidden_layers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = run_script(root, "scripts.select_scenarios", "--scenario", "class", "--grid", "ewc=1,10", "--iterations", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = "scenario,method,lambda,val_average_after_last,val_average_after_each,val_R"
    rows = [line.split(",") for line in lines[lines.index(header) + 1:] if line.startswith("class,")]
    assert [r[:3] for r in rows] == [["class", "ewc", "1"], ["class", "ewc", "10"]]
    for _, _, _, last, each, r in rows:
        matrix = [[float(v) for v in row.split()] for row in r.split("/")]
        assert [len(row) for row in matrix] == [1, 2, 3, 4, 5]  # after task i: tasks 1..i
        averages = [float(v) for v in each.split()]
        assert averages == pytest.approx([sum(row) / len(row) for row in matrix], abs=1e-4)
        assert float(last) == averages[-1]
        assert all(0.0 <= v <= 1.0 for row in matrix for v in row)
    best = [line for line in lines if line.startswith("best class ewc: lambda=")]
    assert len(best) == 1
