"""The reproduction check's pieces: reading every number of the results, tolerances by kind, the table of numbers
that moved, and which provenance entries decide byte-identity."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cllab import provenance, reproduction


def test_json_numbers_reads_every_leaf_by_dotted_path_including_nulls():
    text = json.dumps({"methods": {"ewc": {"forgetting": {"mean": 0.1, "ci95": None}}}, "seeds": 5})
    assert reproduction.json_numbers(text, "test") == {
        "test.methods.ewc.forgetting.mean": 0.1, "test.methods.ewc.forgetting.ci95": None, "test.seeds": 5}


def test_csv_numbers_keys_rows_by_their_identifying_columns():
    text = "seed,method,forgetting,diverged\n0,ewc,0.25,False\n1,ewc,0.5,True\n"
    assert reproduction.csv_numbers(text, "per_seed.test", ["seed", "method"]) == {
        "per_seed.test.0.ewc.forgetting": 0.25, "per_seed.test.0.ewc.diverged": "False",
        "per_seed.test.1.ewc.forgetting": 0.5, "per_seed.test.1.ewc.diverged": "True"}


def test_an_empty_csv_cell_is_an_undefined_number_shown_as_missing_when_the_other_side_has_one():
    """The joint model's forgetting is an empty cell: it equals an empty cell, and against a number the table of
    moved numbers says 'missing' (not a text cell's 0 / inf)."""
    empty = reproduction.csv_numbers("seed,method,forgetting\n0,joint,\n", "per_seed.test", ["seed", "method"])
    assert empty == {"per_seed.test.0.joint.forgetting": None}
    tol = {"mean": 1.0, "ci95": 1.0, "per_seed": 1.0, "count": 1}
    assert reproduction.compare(empty, dict(empty), tol)[0].ok
    number = reproduction.csv_numbers("seed,method,forgetting\n0,joint,0.0\n", "per_seed.test", ["seed", "method"])
    table = reproduction.moved_table(reproduction.compare(empty, number, tol))
    assert table.splitlines()[1].split()[:3] == ["per_seed.test.0.joint.forgetting", "missing", "0.0000"]


@pytest.mark.parametrize("name,kind", [
    ("test.methods.ewc.forgetting.mean", "mean"),
    ("test.paired_vs_l2.ewc.acc_a_after_b.ci95", "ci95"),
    ("test.paired_vs_l2.ewc.seeds_better_on_average_accuracy", "count"),
    ("per_seed.test.0.ewc.forgetting", "per_seed"),
    ("per_seed.sweep.ewc.sgd.128.100.0000.test_acc_a", "per_seed"),
])
def test_kind_of_a_number_follows_its_name(name, kind):
    assert reproduction.kind_of(name) == kind


def test_numbers_within_their_kinds_tolerance_agree_and_beyond_it_do_not():
    tol = {"mean": 0.01, "ci95": 0.02, "per_seed": 0.05, "count": 1}
    committed = {"t.a.mean": 0.80, "t.a.ci95": 0.02, "per_seed.t.0.a": 0.70, "t.n.seeds_better_x": 3}
    close = {"t.a.mean": 0.809, "t.a.ci95": 0.039, "per_seed.t.0.a": 0.749, "t.n.seeds_better_x": 4}
    far = {"t.a.mean": 0.82, "t.a.ci95": 0.02, "per_seed.t.0.a": 0.70, "t.n.seeds_better_x": 3}
    assert all(d.ok for d in reproduction.compare(committed, close, tol))
    moved = [d.name for d in reproduction.compare(committed, far, tol) if not d.ok]
    assert moved == ["t.a.mean"]


def test_a_number_missing_on_one_side_or_a_changed_flag_never_agrees():
    tol = {"mean": 1.0, "ci95": 1.0, "per_seed": 1.0, "count": 1}
    diffs = {d.name: d for d in reproduction.compare(
        {"t.a.mean": 0.5, "per_seed.s.0.diverged": "False"}, {"t.b.mean": 0.5, "per_seed.s.0.diverged": "True"}, tol)}
    assert not diffs["t.a.mean"].ok and not diffs["t.b.mean"].ok and not diffs["per_seed.s.0.diverged"].ok
    # an undefined interval (one seed) equals an undefined interval
    assert reproduction.compare({"t.a.ci95": None}, {"t.a.ci95": None}, tol)[0].ok


def test_moved_table_names_each_moved_number_with_both_values_largest_move_first():
    tol = {"mean": 0.01, "ci95": 0.02, "per_seed": 0.05, "count": 1}
    diffs = reproduction.compare({"t.ewc.mean": 0.80, "t.l2.mean": 0.70, "t.si.mean": 0.6},
                                 {"t.ewc.mean": 0.90, "t.l2.mean": 0.72, "t.si.mean": 0.6}, tol)
    lines = reproduction.moved_table(diffs).splitlines()
    assert lines[0].split() == ["metric", "committed", "here", "|Δ|", "allowed"]
    assert lines[1].split() == ["t.ewc.mean", "0.8000", "0.9000", "0.1000", "0.0100"]
    assert lines[2].split()[0] == "t.l2.mean" and len(lines) == 3
    assert reproduction.moved_table(reproduction.compare({"x.mean": 1.0}, {"x.mean": 1.0}, tol)) == ""


def test_spread_by_kind_is_the_largest_finite_difference_of_each_kind():
    diffs = reproduction.compare({"a.mean": 0.5, "b.mean": 0.5, "per_seed.c": 0.1, "d.mean": 0.1},
                                 {"a.mean": 0.51, "b.mean": 0.47, "per_seed.c": 0.2})
    spread = reproduction.spread_by_kind(diffs)
    assert spread["mean"] == pytest.approx(0.03) and spread["per_seed"] == pytest.approx(0.1)
    assert all(math.isfinite(v) for v in spread.values())


def test_provenance_records_what_decides_the_bytes_without_importing_tensorflow():
    record = provenance.collect({"threads": 2, "precision": "float64"}, tensorflow={"onednn_isa": "AVX2", "gpus": []})
    assert record["runtime"] == {"threads": 2, "precision": "float64"}
    assert record["onednn_isa"] == "AVX2" and record["gpus"] == []
    assert {"model", "flags", "l1d", "l2"} <= set(record["cpu"])
    assert {"tensorflow", "tensorflow-cpu", "keras", "numpy", "dvc"} <= set(record["versions"])
    assert record["python"]["version"].count(".") == 2 and record["os"]["system"]


def test_provenance_differences_ignore_descriptive_entries_and_name_the_ones_that_matter(monkeypatch):
    for name in provenance.KERNEL_ENV:  # as on a machine where none is set (CI may export ONEDNN_MAX_CPU_ISA)
        monkeypatch.delenv(name, raising=False)
    base = provenance.collect({"threads": 2, "precision": "float64"}, tensorflow={"onednn_isa": "AVX-512", "gpus": []})
    same_kernels = json.loads(json.dumps(base))
    same_kernels["cpu"]["cores"] = 64
    same_kernels["os"]["release"] = "another kernel"
    assert provenance.differences(base, same_kernels) == []
    other = json.loads(json.dumps(base))
    other["onednn_isa"] = "AVX2"
    other["env"] = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    other["runtime"]["precision"] = "float32"
    assert [key for key, _, _ in provenance.differences(base, other)] == [
        "env.ONEDNN_MAX_CPU_ISA", "onednn_isa", "runtime.precision"]


def test_provenance_table_lists_every_entry():
    record = {"cpu": {"model": "X", "flags": ["avx", "avx2"], "l1d": None}, "gpus": []}
    table = provenance.markdown(record)
    assert "| cpu.model | X |" in table and "| cpu.flags | avx, avx2 |" in table and "| cpu.l1d | — |" in table
    assert "| gpus | — |" in table


def test_a_means_tolerance_grows_as_seeds_shrink_but_never_beyond_one_seeds():
    five = reproduction.tolerances("float32", reproduction.MEASURED_SEEDS)
    one = reproduction.tolerances("float32", 1)
    assert five == reproduction.TOLERANCES["float32"]
    assert five["mean"] < reproduction.tolerances("float32", 2)["mean"] < one["mean"] <= one["per_seed"]
    assert reproduction.tolerances("float32", 20)["mean"] < five["mean"]


def test_float64_results_are_held_far_tighter_than_float32_ones():
    f64, f32 = reproduction.tolerances("float64", 5), reproduction.tolerances("float32", 5)
    assert all(f64[kind] < f32[kind] for kind in ("per_seed", "mean", "ci95", "count"))
    assert reproduction.tolerances("float64", 1)["mean"] == f64["per_seed"]
    with pytest.raises(ValueError, match="float16"):
        reproduction.tolerances("float16", 5)


def _override(root: Path, target: Path, overrides: Path | str) -> subprocess.CompletedProcess:
    """`scripts/reproduce.py override` on a copy of params.yaml at `target` (the copy made here)."""
    if not target.exists():
        target.write_text((root / "params.yaml").read_text())
    return subprocess.run([sys.executable, "scripts/reproduce.py", "override", str(target), str(overrides)],
                          cwd=root, capture_output=True, text=True)


def test_the_override_command_stops_on_a_bad_file_key_or_value_and_leaves_params_alone(root, tmp_path):
    target = tmp_path / "params.yaml"
    (tmp_path / "bad.yaml").write_text("sequence: {num_tasks: [3}\n")
    (tmp_path / "typo.yaml").write_text("sequence: {num_task: 3}\n")
    (tmp_path / "zero.yaml").write_text("sequence: {num_tasks: 0}\n")
    for overrides, message in ((tmp_path / "nope.yaml", "nope.yaml: not found (an overrides file of params.yaml keys)"),
                               (tmp_path / "bad.yaml", "bad.yaml: not valid YAML at line 1"),
                               (tmp_path / "typo.yaml", "typo.yaml: sequence.num_task is not a key of " + str(target)),
                               (tmp_path / "zero.yaml", "sequence.num_tasks must be an integer >= 2, got 0 (with the "
                                                        f"overrides of {tmp_path / 'zero.yaml'})")):
        done = _override(root, target, overrides)
        assert done.returncode == 1 and done.stderr.strip().endswith(message), done.stderr
        assert target.read_text() == (root / "params.yaml").read_text()
    done = _override(root, target, "sequence/ci.yaml")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("pipeline", ["sequence", "scenarios"])
def test_ci_s_small_configuration_gives_the_params_its_committed_results_were_made_with(root, tmp_path, pipeline):
    """params.yaml with <pipeline>/ci.yaml applied holds, at every key a stage of <pipeline>/ci/dvc.lock lists, the
    value recorded there: a change to either file that would move CI's expected results shows here first. Not
    check_params: it lists both params files whole (it checks every key) and writes the same params.ok whatever they
    hold, so a value of another pipeline changed in params.yaml moves no result of this one."""
    target = tmp_path / "params.yaml"
    done = _override(root, target, f"{pipeline}/ci.yaml")
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(target.read_text())
    recorded = yaml.safe_load((root / pipeline / "ci" / "dvc.lock").read_text())["stages"]
    checked = 0
    for stage, entry in recorded.items():
        if stage == "check_params":
            continue
        for dotted, value in entry.get("params", {}).get("params.yaml", {}).items():
            node = written
            for key in dotted.split("."):
                node = node[key]
            assert node == value, f"{stage}: {dotted} is {node!r} here, {value!r} in {pipeline}/ci/dvc.lock"
            checked += 1
    assert checked > 100
    if pipeline == "sequence":
        assert written["sequence"]["method"]["si"] == {"lambda": 3}  # CI's own λ, not params.yaml's
    else:
        assert written["scenarios"]["train"]["iterations"] == 50


def test_a_small_runs_lock_is_compared_by_its_outputs_only():
    """check_small.sh compares a small run's dvc.lock with the recorded one stage by stage: a stage whose outputs moved
    (or that only one lock has) differs; a stage that read other code or params and wrote the same bytes does not."""
    from scripts.reproduce import lock_outputs_differ

    def entry(md5: str, dep: str = "a", lam: float = 1.0) -> dict:
        return {"cmd": "x", "deps": [{"path": "cllab/x.py", "md5": dep}], "params": {"params.yaml": {"l": lam}},
                "outs": [{"path": "out.json", "hash": "md5", "md5": md5, "size": 3}]}
    recorded = {"run@0": entry("m1"), "report": entry("m2"), "check_params": entry("m3")}
    same_bytes = {"run@0": entry("m1", dep="b"), "report": entry("m2"), "check_params": entry("m3", lam=2.0)}
    assert lock_outputs_differ(recorded, same_bytes) == []
    moved = {**same_bytes, "report": entry("m9")}
    assert lock_outputs_differ(recorded, moved) == ["report"]
    assert lock_outputs_differ(recorded, {"run@0": entry("m1"), "report": entry("m2")}) == ["check_params"]
