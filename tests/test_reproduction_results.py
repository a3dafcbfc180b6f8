"""The reproduction check covers every result file a pipeline commits (issue 29: a forged headline mean passed on a
host whose CPU differs from provenance.json, because only four hand-picked files were compared there).

The committed results of every pipeline (./dvc.yaml, sweep/dvc.yaml, sequence/dvc.yaml, sequence/paper/dvc.yaml, as
DVC resolves them at HEAD, read with git: nothing runs) are forged one file at a time, in memory: the first measured
number (the first non-integer one, else the first number) moves by +0.03, and the check must fail naming that file and
key, in tolerance mode (another CPU) and in byte mode (the committing machine); moved by less than its tolerance, it
must pass in tolerance mode. The command line is checked on a copy of HEAD's files in a temporary git repository."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cllab import reproduction

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ("dvc.yaml", "sweep/dvc.yaml", "sequence/dvc.yaml", "sequence/paper/dvc.yaml")
FORGERY = 0.03


def _script() -> ModuleType:
    """scripts/reproduce.py as a module (its git and DVC wiring)."""
    spec = importlib.util.spec_from_file_location("reproduce_script", ROOT / "scripts" / "reproduce.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduce = _script()


def _committed_trees() -> dict[str, dict[str, bytes]]:
    """{pipeline: {result file: its bytes at HEAD}}, its dvc.lock included; {} only where there is no git HEAD (a
    broken dvc.yaml or git error is a failure here, not a reason to skip the suite)."""
    import subprocess

    if subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        return {}
    trees: dict[str, dict[str, bytes]] = {}
    with reproduce.GitBlobs("HEAD") as blobs:
        for pipeline in PIPELINES:
            files = reproduce.committed_files("HEAD", reproduce.pipeline_outputs("HEAD", [pipeline]))
            trees[pipeline] = {f: blobs.read(f) for f in files}
    return trees


TREES = _committed_trees()  # read once, at collection: the cases below are its files
PRECISION = json.loads(reproduce.git_show("HEAD", "provenance.json"))["runtime"]["precision"] if TREES else "float64"
CASES = [pytest.param(pipeline, path, id=path) for pipeline, tree in TREES.items() for path in tree
         if reproduction.has_numbers(path)]
needs_results = pytest.mark.skipif(not TREES, reason="HEAD's committed results cannot be read (not a git checkout?)")


def _first_measure(leaves: list[tuple[tuple, object]]) -> tuple[tuple, float]:
    """The first non-integer number of (key, value) leaves in file order, else the first number."""
    numbers = [(k, v) for k, v in leaves if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numbers, "a result file without a number"
    return next(((k, v) for k, v in numbers if isinstance(v, float)), numbers[0])


def _json_leaves(node, key: tuple = ()) -> list[tuple[tuple, object]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _json_leaves(v, (*key, k))]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _json_leaves(v, (*key, i))]
    return [(key, node)]


def _set(node, key: tuple, value) -> None:
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value


def forge(path: str, data: bytes, shift: float) -> tuple[bytes, str]:
    """The file with its first measured number moved by `shift`, and that number's name in the check's output
    ('<path>:<key>', the key dotted, list items and table rows by index)."""
    text = data.decode()
    if path.endswith(".json"):
        document = json.loads(text)
        key, value = _first_measure(_json_leaves(document))
        _set(document, key, value + shift)
        return json.dumps(document, indent=2).encode(), f"{path}:{'.'.join(map(str, key))}"
    rows = list(csv.reader(io.StringIO(text), delimiter="\t" if path.endswith(".tsv") else ","))

    def number(cell: str):
        try:
            return int(cell)
        except ValueError:
            try:
                return float(cell)
            except ValueError:
                return cell

    leaves = [((i, rows[0][j], j), number(cell)) for i, row in enumerate(rows[1:]) for j, cell in enumerate(row)]
    (i, column, j), value = _first_measure(leaves)
    rows[i + 1][j] = repr(value + shift)
    out = io.StringIO()
    csv.writer(out, delimiter="\t" if path.endswith(".tsv") else ",", lineterminator="\n").writerows(rows)
    return out.getvalue().encode(), f"{path}:{i}.{column}"


def table_names(err: str) -> list[str]:
    """The names in the table of numbers that moved (or differ), in its order."""
    lines = err.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["metric", "committed", "here"])
    return [line.split()[0] for line in lines[header + 1:] if not line.startswith(("... and", "missing", "not "))]


def check(committed: dict[str, bytes], here: dict[str, bytes], byte_mode: bool,
          precision: str = PRECISION) -> tuple[bool, str, str]:
    """The check's verdict on two trees held in memory: passed, stdout, stderr."""
    result = reproduction.compare_trees(committed.get, here.get, set(committed) | set(here), precision)
    ok, out, err = reproduction.verdict(result, byte_mode=byte_mode, rev="HEAD")
    return ok, "\n".join(out), "\n".join(err)


@needs_results
def test_every_pipeline_s_committed_results_are_compared_not_a_hand_kept_list():
    """What issue 29's forgery got past (the headline, metrics/seeds/) and what was never compared (the sequence's
    runs) are all among the files the check compares, each pipeline with its dvc.lock. The training stages' DVCLive
    logs and per-seed curves are cached outputs (so that DVC run-caches those stages): dvc.lock's hashes hold them,
    the plot stage's means of the curves are in git."""
    expected = {
        "dvc.yaml": ["metrics/headline/ewc.json", "metrics/headline/ewc.ci95.json", "metrics/seeds/0/ewc.json",
                     "metrics/test.json", "metrics/test_per_seed.csv", "plots/forgetting.csv",
                     "plots/training_b.csv", "plots/accuracy.png", "report.md", "dvc.lock"],
        "sweep/dvc.yaml": ["sweep/front.csv", "sweep/points/h128/ewc_100_sgd_h128.json", "plots/front.png",
                           "sweep/dvc.lock"],
        "sequence/dvc.yaml": ["sequence/runs/0/ewc.json", "sequence/runs/0/joint.json", "sequence/metrics/full.json",
                              "sequence/metrics/headline/ewc.json", "sequence/metrics/by_tasks.csv",
                              "sequence/plots/curves.csv", "sequence/report.md", "sequence/dvc.lock"],
        "sequence/paper/dvc.yaml": ["sequence/paper/runs/0/ewc.json", "sequence/paper/metrics/full.json",
                                    "sequence/paper/metrics/headline/ewc.json", "sequence/paper/dvc.lock"],
    }
    for pipeline, files in expected.items():
        assert set(files) <= set(TREES[pipeline]), (pipeline, set(files) - set(TREES[pipeline]))
    # cached outputs are not in git (their hashes are, in dvc.lock)
    assert not any(f.endswith(".npz") or f.startswith(("dvclive/", "plots/curves/")) for tree in TREES.values()
                   for f in tree)
    assert len(CASES) > 200


@needs_results
@pytest.mark.parametrize("mode", ["tolerance", "bytes"])
@pytest.mark.parametrize("pipeline,path", CASES)
def test_a_number_forged_in_any_committed_result_file_fails_the_check_naming_it(pipeline, path, mode):
    committed = TREES[pipeline]
    forged, name = forge(path, committed[path], FORGERY)
    ok, out, err = check(committed, {**committed, path: forged}, byte_mode=mode == "bytes")
    assert not ok and "NOT REPRODUCED" in err
    assert table_names(err) == [name], err  # that number and no other
    if mode == "tolerance":
        assert f"  {path}" in out.splitlines()  # named among the files whose bytes differ


@needs_results
@pytest.mark.parametrize("pipeline,path", CASES)
def test_a_number_moved_within_its_tolerance_passes_in_tolerance_mode_not_in_byte_mode(pipeline, path):
    committed = TREES[pipeline]
    _, name = forge(path, committed[path], 0.0)
    values = reproduction.file_values(path, committed[path])
    tolerance = reproduction.tolerances(PRECISION, reproduction.MEASURED_SEEDS)[values.kinds[name]]
    if tolerance == 0:
        pytest.skip(f"{name} is an integer: it may not move at all")
    moved, _ = forge(path, committed[path], 0.6 * tolerance)
    here = {**committed, path: moved}
    ok, out, err = check(committed, here, byte_mode=False)
    assert ok, err
    assert "REPRODUCED within tolerance: all " in out and "(the bytes differ)" in out and f"  {path}" in out
    ok, _, err = check(committed, here, byte_mode=True)
    assert not ok and name in err


@needs_results
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_result_file_missing_here_or_not_committed_fails_naming_it(pipeline):
    committed = TREES[pipeline]
    gone = next(f for f in committed if reproduction.has_numbers(f))
    image = next((f for f in committed if f.endswith(".png")), None)
    here = {f: data for f, data in committed.items() if f not in (gone, image)}
    here[gone.replace(".", "_new.", 1)] = committed[gone]
    for byte_mode in (False, True):
        ok, _, err = check(committed, here, byte_mode)
        assert not ok
        assert f"missing here (committed at HEAD): {gone}" in err.splitlines()
        assert f"not committed at HEAD (only here): {gone.replace('.', '_new.', 1)}" in err.splitlines()
        assert image is None or f"missing here (committed at HEAD): {image}" in err.splitlines()


@needs_results
def test_an_image_or_report_whose_bytes_differ_is_listed_failing_only_in_byte_mode():
    committed = TREES["dvc.yaml"]
    here = {**committed, "plots/accuracy.png": committed["plots/accuracy.png"] + b"\0",
            "report.md": committed["report.md"] + b"\n", "dvc.lock": committed["dvc.lock"] + b"\n"}
    ok, out, err = check(committed, here, byte_mode=False)
    assert ok, err
    listed = out.split("without numbers to compare", 1)[1].splitlines()
    assert {"  plots/accuracy.png", "  report.md", "  dvc.lock"} <= set(listed)
    assert "not a failure in tolerance mode" in out and "(the bytes differ)" in out
    ok, _, err = check(committed, here, byte_mode=True)
    assert not ok and "bytes differ: plots/accuracy.png" in err and "(no number differs" in err


def test_a_file_of_an_unknown_kind_or_an_unreadable_one_must_match_in_both_modes():
    committed = {"out/weights.npz": b"\x00\x01", "out/a.json": b'{"x": 0.5}'}
    here = {"out/weights.npz": b"\x00\x02", "out/a.json": b'{"x": 0.5'}
    for byte_mode in (False, True):
        ok, _, err = check(committed, here, byte_mode, "float64")
        assert not ok and "out/weights.npz" in err
        assert "out/a.json: cannot read its numbers (JSONDecodeError" in err and "(here)" in err


def test_every_value_of_a_file_counts_lists_nulls_flags_and_table_cells_by_row():
    tree = {"r.json": json.dumps({"R": [[0.5, 0.25], [0.75]], "ci": None, "diverged": False, "seeds": 3}).encode(),
            "t.tsv": b"step\tacc\n1\t0.5\n2\t0.6\n"}
    values = reproduction.file_values("r.json", tree["r.json"]).values
    assert dict(values) == {"r.json:R.0.0": 0.5, "r.json:R.0.1": 0.25, "r.json:R.1.0": 0.75, "r.json:ci": None,
                            "r.json:diverged": "false", "r.json:seeds": 3}
    assert dict(reproduction.file_values("t.tsv", tree["t.tsv"]).values) == {
        "t.tsv:0.step": 1, "t.tsv:0.acc": 0.5, "t.tsv:1.step": 2, "t.tsv:1.acc": 0.6}
    ok, out, _ = check(tree, dict(tree), byte_mode=False, precision="float64")
    assert ok and "all 9 numbers and 1 text values of 2 result files agree with HEAD" in out
    flipped = {**tree, "r.json": tree["r.json"].replace(b"false", b"true")}
    ok, _, err = check(tree, flipped, byte_mode=False, precision="float64")
    assert not ok and "r.json:diverged" in err
    a_row_more = {**tree, "t.tsv": tree["t.tsv"] + b"3\t0.7\n"}
    ok, _, err = check(tree, a_row_more, byte_mode=False, precision="float64")
    assert not ok and "t.tsv:2.acc" in err and "absent" in err


def test_a_long_table_of_moved_numbers_still_names_the_file_of_every_one():
    committed = {f"f{i % 3}.json:k{i}": 0.5 for i in range(10)}
    diffs = reproduction.compare(committed, {name: 0.6 for name in committed}, reproduction.tolerances("float64", 5))
    lines = reproduction.moved_table(diffs, limit=4).splitlines()
    assert len(lines) == 6 and lines[-1] == "... and 6 more, in f1.json (3), f2.json (3)"


@pytest.mark.parametrize("path,key,value,kind", [
    ("metrics/headline/ewc.json", ("average",), 0.83, "mean"),
    ("metrics/headline/ewc.json", ("seeds",), 5, "exact"),
    ("metrics/headline/ewc.ci95.json", ("average",), 0.02, "ci95"),
    ("sequence/paper/metrics/headline/none.ci95.json", ("forgetting",), 0.02, "ci95"),
    ("metrics/test.json", ("paired_vs_l2", "ewc", "acc_a_after_b", "ci95"), 0.03, "ci95"),
    ("metrics/test.json", ("paired_vs_l2", "ewc", "seeds_better_on_average_accuracy"), 5, "count"),
    ("metrics/test.csv", (0, "forgetting_mean"), 0.6, "mean"),
    ("metrics/test_per_seed.csv", (0, "forgetting"), 0.6, "per_seed"),
    ("metrics/test_per_seed.csv", (0, "seed"), 0, "exact"),
    ("metrics/test_per_seed.csv", (0, "method"), "ewc", "exact"),
    ("metrics/seeds/0/ewc.json", ("average",), 0.85, "per_seed"),
    ("sequence/metrics/full.json", ("methods", "ewc", "accuracy_matrix_mean", 3, 1), 0.9, "mean"),
    ("sequence/metrics/by_tasks.csv", (4, "average_accuracy"), 0.9, "mean"),
    ("sequence/metrics/by_tasks.csv", (4, "ci95"), 0.01, "ci95"),
    ("sequence/plots/curves.csv", (7, "acc_1"), 0.9, "mean"),
    ("plots/forgetting.csv", (7, "acc_a"), 0.9, "mean"),
    ("plots/training_b.csv", (2, "val_penalty"), 0.7, "per_seed"),  # losses: never measured across CPUs
    ("sequence/runs/0/ewc.json", ("R", "test", 3, 1), 0.9, "per_seed"),
    ("sweep/points/h128/ewc_100_sgd_h128.json", ("lambda",), 100, "exact"),
    ("sweep/points/h128/l2_0.3_sgd_h128.json", ("lambda",), 0.3, "per_seed"),
])
def test_the_kind_of_a_number_follows_its_file_key_and_type(path, key, value, kind):
    assert reproduction.kind_in(path, key, value) == kind


@needs_results
def test_in_float32_a_forged_mean_fails_but_a_forged_per_seed_value_is_within_one_seed_s_tolerance():
    """What +0.03 reaches where the results are float32 (0.05 per seed): the headline mean is caught (0.011), one
    seed's value is not; only byte mode sees that."""
    committed = TREES["dvc.yaml"]
    for path, caught in (("metrics/headline/ewc.json", True), ("metrics/seeds/0/ewc.json", False)):
        forged, name = forge(path, committed[path], FORGERY)
        ok, _, err = check(committed, {**committed, path: forged}, byte_mode=False, precision="float32")
        assert ok is not caught and (name in err) is caught
        ok, _, err = check(committed, {**committed, path: forged}, byte_mode=True, precision="float32")
        assert not ok and name in err


# The command line, on a git repository holding HEAD's files ---------------------------------------------------------

def sh(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def git(cwd: Path, *args: str) -> None:
    done = sh(cwd, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def head_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HEAD's files (git archive) with this work tree's check scripts, committed in a new repository."""
    if not TREES:
        pytest.skip("HEAD's committed results cannot be read (not a git checkout?)")
    work = tmp_path_factory.mktemp("head")
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
    for name in ("scripts/reproduce.py", "cllab/reproduction.py"):
        shutil.copy2(ROOT / name, work / name)
    sh(work, "git", "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "HEAD's files")
    git(work, "tag", "base")
    recorded = json.loads((work / "provenance.json").read_text())
    (work.parent / "same.json").write_text(json.dumps(recorded))
    (work.parent / "other.json").write_text(json.dumps({**recorded, "onednn_isa": "Intel AVX2"}))
    return work


@pytest.fixture
def repo(head_copy: Path):
    """The repository, put back to its first commit after each test."""
    yield head_copy
    git(head_copy, "reset", "-q", "--hard", "base")
    sh(head_copy, "git", "clean", "-fdq")


def compare(repo: Path, machine: str, *args: str) -> subprocess.CompletedProcess:
    """`scripts/reproduce.py compare` in the repository, on the committing machine ('same') or another ('other')."""
    return sh(repo, sys.executable, "scripts/reproduce.py", "compare", "--here", str(repo.parent / f"{machine}.json"),
              *args)


def test_the_command_passes_on_the_committed_results_in_both_modes(repo: Path):
    same = compare(repo, "same")
    assert same.returncode == 0, same.stderr
    assert "results must be byte-identical (every committed output of dvc.yaml and its dvc.lock)" in same.stdout
    files = int(same.stdout.split("REPRODUCED: all ", 1)[1].split()[0])
    assert files == len(TREES["dvc.yaml"]) > 60
    other = compare(repo, "other", "--with-sweep")
    assert other.returncode == 0, other.stderr
    assert "onednn_isa:" in other.stdout and "dvc.yaml, sweep/dvc.yaml" in other.stdout
    assert "REPRODUCED within tolerance: all " in other.stdout and "(and the bytes are identical too)" in other.stdout


def test_issue_29_a_forged_headline_mean_committed_fails_on_another_cpu(repo: Path):
    """The report: `average` of metrics/headline/ewc.json forged by +0.03 and committed; here the pipeline made the
    true one. The check ran in tolerance mode and passed; now it names the number."""
    path = repo / "metrics" / "headline" / "ewc.json"
    true = path.read_text()
    headline = json.loads(true)
    headline["average"] = round(headline["average"] + FORGERY, 6)
    path.write_text(json.dumps(headline, indent=2) + "\n")
    git(repo, "commit", "-qam", "forged")
    path.write_text(true)
    for machine in ("other", "same"):
        done = compare(repo, machine)
        assert done.returncode == 1, done.stdout
        assert "NOT REPRODUCED" in done.stderr
        assert table_names(done.stderr) == ["metrics/headline/ewc.json:average"], done.stderr


def test_the_command_names_a_missing_result_file_and_one_that_is_not_committed(repo: Path):
    (repo / "metrics" / "seeds" / "1" / "ewc.json").unlink()
    (repo / "metrics" / "seeds" / "0" / "extra.json").write_text('{"average": 0.5}\n')
    done = compare(repo, "other")
    assert done.returncode == 1
    assert "missing here (committed at HEAD): metrics/seeds/1/ewc.json" in done.stderr
    assert "not committed at HEAD (only here): metrics/seeds/0/extra.json" in done.stderr


@pytest.mark.parametrize("pipeline,path", [
    ("sequence/dvc.yaml", "sequence/runs/1/si.json"),
    ("sequence/paper/dvc.yaml", "sequence/paper/runs/2/ewc_online.json"),
    ("sweep/dvc.yaml", "sweep/front.csv"),
])
def test_the_command_compares_a_given_pipeline_s_results(repo: Path, pipeline: str, path: str):
    forged, name = forge(path, (repo / path).read_bytes(), FORGERY)
    (repo / path).write_bytes(forged)
    done = compare(repo, "other", "--pipeline", pipeline)
    assert done.returncode == 1 and f"every committed output of {pipeline} and its dvc.lock" in done.stdout
    assert table_names(done.stderr) == [name], done.stderr
    assert compare(repo, "other").returncode == 0  # ./dvc.yaml's results are untouched


def test_an_output_added_to_dvc_yaml_later_is_compared_without_editing_the_check(repo: Path):
    text = (repo / "dvc.yaml").read_text()
    assert text.count("\nstages:\n") == 1
    stage = "  extra:\n    cmd: python -c pass\n    outs:\n      - extra/result.json:\n          cache: false\n"
    (repo / "dvc.yaml").write_text(text.replace("\nstages:\n", "\nstages:\n" + stage))
    (repo / "extra").mkdir()
    (repo / "extra" / "result.json").write_text('{"accuracy": 0.9}\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a new stage")
    listed = sh(repo, sys.executable, "scripts/reproduce.py", "outputs")
    assert listed.returncode == 0 and "extra/result.json" in listed.stdout.split() and "dvc.lock" in listed.stdout
    (repo / "extra" / "result.json").write_text('{"accuracy": 0.93}\n')
    done = compare(repo, "other")
    assert done.returncode == 1 and table_names(done.stderr) == ["extra/result.json:accuracy"], done.stderr
