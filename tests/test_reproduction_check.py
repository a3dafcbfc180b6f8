"""The reproduction check end to end on a small configuration: results recorded on this machine reproduce when the
whole pipeline reruns under another oneDNN ISA (another CPU, emulated), and a deliberate regression in the code
fails the check with a table of the metrics that moved, also where only the tolerance applies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_pipeline import copy_project, dvc, put_mnist, run, set_param

from cllab import io

pytestmark = pytest.mark.slow

# oneDNN then runs the kernels an AVX2-only CPU would (or an SSE4.1 one, where this run already emulates AVX2)
HERE_ISA = os.environ.get("ONEDNN_MAX_CPU_ISA")
OTHER_CPU = {"ONEDNN_MAX_CPU_ISA": "SSE41" if HERE_ISA == "AVX2" else "AVX2"}


def env(**extra: str) -> dict[str, str]:
    """The environment with this interpreter's bin first on PATH (the stages run `python -m ...`)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **extra}


def sh(cwd: Path, *cmd: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env(**(extra or {})))


def git(cwd: Path, *args: str) -> None:
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd)


@pytest.fixture(scope="module")
def recorded(root: Path, mnist_dir: Path, tfds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small project whose results were made and committed here with `check_reproduction.sh --record`."""
    work = tmp_path_factory.mktemp("recorded")
    copy_project(root, work)
    (work / "provenance.json").unlink(missing_ok=True)
    put_mnist(mnist_dir, work)
    for key, value in {
        "prepare.tfds_dir": str(tfds_dir), "model.hidden_units": 32,
        "train_joint.epochs": 1, "train_a.epochs": 1, "train_b.epochs": 1, "importance.fisher.num_examples": 500,
        "importance.mas.num_examples": 500, "plot.dpi": 40,
        # λ small enough that the regression below (a Fisher ~100x larger) does not diverge: lr·λ·max F < 2
        "train_b.ewc.lambda": 2, "seeds": [0], "methods": ["l2", "ewc"],
    }.items():
        set_param(work, key, value)
    run(["git", "init", "-q"], work)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "small")
    done = sh(work, "bash", "scripts/check_reproduction.sh", "--record")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (work / "provenance.json").is_file() and "## Where these results were made" in (work / "report.md").read_text()
    git(work, "add", "-A")
    git(work, "commit", "-qm", "results")
    return work


def copy_of(project: Path, dest: Path) -> Path:
    """A copy with git history, DVC cache and outputs: a changed stage reruns, nothing else."""
    shutil.copytree(project, dest, symlinks=True)
    return dest


def test_a_rerun_under_another_cpus_kernels_passes_the_whole_check(recorded: Path, tmp_path: Path):
    other = copy_of(recorded, tmp_path / "other-cpu")
    done = sh(other, "bash", "scripts/check_reproduction.sh", "--force", extra=OTHER_CPU)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "differs from provenance.json in" in out
    assert f"env.ONEDNN_MAX_CPU_ISA: {HERE_ISA!r} -> {OTHER_CPU['ONEDNN_MAX_CPU_ISA']!r}" in out
    assert "REPRODUCED within tolerance" in out
    assert "the bytes are identical too" in out  # float64: the ISA does not reach Eigen's double kernels
    assert "DETERMINISTIC:" in out


def test_on_the_recording_machine_the_check_is_byte_for_byte(recorded: Path, tmp_path: Path):
    same = copy_of(recorded, tmp_path / "same-cpu")
    with (same / "metrics" / "test_per_seed.csv").open("a") as table:  # same numbers, one more byte
        table.write("\n")
    done = sh(same, sys.executable, "scripts/reproduce.py", "compare")
    assert done.returncode == 1 and "results must be byte-identical" in done.stdout
    assert "NOT REPRODUCED" in done.stderr


@pytest.mark.parametrize("path,old,new,moved", [
    # the exact Fisher without its p(y|x) weighting: every class's squared gradient counted in full
    ("cllab/importance.py", "        return probs.astype(np.float64)\n", "        return np.ones_like(probs, np.float64)\n",
     "metrics/test.json:methods.ewc."),
    # task B's SGD with another learning rate than params.yaml says
    ("cllab/model.py", "keras.optimizers.SGD(learning_rate=learning_rate)", "keras.optimizers.SGD(learning_rate=3 * learning_rate)",
     "metrics/test.json:methods.l2."),
])
def test_a_regression_in_the_code_fails_the_check_with_a_table_of_what_moved(recorded, tmp_path, path, old, new, moved):
    broken = copy_of(recorded, tmp_path / "broken")
    source = (broken / path).read_text()
    assert source.count(old) == 1
    (broken / path).write_text(source.replace(old, new))
    dvc(broken, "repro")
    # on another CPU, where only the tolerance applies, as on this one, where bytes must match
    for extra in (OTHER_CPU, {}):
        done = sh(broken, sys.executable, "scripts/reproduce.py", "compare", extra=extra)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "NOT REPRODUCED" in done.stderr
        table = done.stderr.splitlines()
        header = next(i for i, line in enumerate(table) if line.split()[:3] == ["metric", "committed", "here"])
        assert any(line.startswith(moved) for line in table[header + 1:]), done.stderr


@pytest.mark.parametrize("shift,reproduced", [(0.0005, True), (0.002, False)])
def test_on_another_cpu_numbers_that_moved_within_the_tolerance_pass_and_beyond_it_fail(
        recorded: Path, tmp_path: Path, shift: float, reproduced: bool):
    """What another CPU's kernels could do to a result, made by hand: one mean moves by less, or more, than the
    float64 tolerance (0.001). Only the tolerance decides there; on the recording machine any move fails."""
    moved = copy_of(recorded, tmp_path / "moved")
    path = moved / "metrics" / "test.json"
    results = json.loads(path.read_text())
    results["methods"]["ewc"]["acc_a_after_b"]["mean"] += shift
    path.write_text(io.json_text(results))
    done = sh(moved, sys.executable, "scripts/reproduce.py", "compare", extra=OTHER_CPU)
    if reproduced:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "REPRODUCED within tolerance" in done.stdout and "(the bytes differ)" in done.stdout
    else:
        assert done.returncode == 1 and "NOT REPRODUCED: 1 of " in done.stderr, done.stdout + done.stderr
        assert "metrics/test.json:methods.ewc.acc_a_after_b.mean" in done.stderr
    same = sh(moved, sys.executable, "scripts/reproduce.py", "compare")
    assert same.returncode == 1 and "results must be byte-identical" in same.stdout
