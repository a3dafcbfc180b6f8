"""Adding a method must not rerun the others (issue 30): in every pipeline, a new module in cllab/methods/ and its
params.yaml entries change, in `dvc status`, exactly the check_params stages, the new method's own stages and the
stages that read every method (the aggregates, reports and plots, and the sweep's widths, which train several
methods' points); never prepare, mnist, train_a, train_joint, a joint run or another method's stage. Editing one
method's module reruns likewise only its own stages and those of every method.

How: a copy of the project's git-tracked files in a new git repository, with a placeholder file for every output
the copy lacks (models, data: never in git), locked as it stands with `dvc commit -f`, so that `dvc status` starts
empty and lists exactly the stages an edit invalidates. No stage runs; ~30 s on 2 busy cores, a third of it
`dvc commit`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PIPELINES = ("dvc.yaml", "sweep/dvc.yaml", "sequence/dvc.yaml", "sequence/paper/dvc.yaml", "scenarios/dvc.yaml")
# The stages of one method (their matrix has a `method`), and those that read every method (check_params validates
# them all; the rest aggregate, plot or, for the sweep's widths, train the points of several methods)
PER_METHOD = {"train_b", "run"}
EVERY_METHOD = {"check_params", "evaluate", "plot", "report", "width", "front"}


def run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def dvc(cwd: Path, *args: str) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def git(cwd: Path, *args: str) -> str:
    return run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd)


def status(cwd: Path, per_file: bool = False) -> dict[str, set[str]]:
    """The stages `dvc status` lists, by pipeline file, without the file prefix DVC adds: from one `dvc status` of the
    whole repository (every pipeline file), or from `dvc status <file>` for each (the same, in 5 processes)."""
    changed: dict[str, set[str]] = {p: set() for p in PIPELINES}
    for pipeline in PIPELINES if per_file else [None]:
        for name in json.loads(dvc(cwd, "status", "--json", *[pipeline] * bool(pipeline)) or "{}"):
            where, _, stage = name.rpartition(":")
            changed[where or "dvc.yaml"].add(stage)
    return changed


def locks(cwd: Path) -> dict[str, dict]:
    """Each pipeline file's lock: every stage as DVC resolved it (names, deps, params). Read once (large files)."""
    if cwd not in _LOCKS:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        _LOCKS[cwd] = {p: yaml.load((cwd / p).with_name("dvc.lock").read_text(), loader)["stages"] for p in PIPELINES}
    return _LOCKS[cwd]


_LOCKS: dict[Path, dict[str, dict]] = {}


def stages(cwd: Path) -> dict[str, set[str]]:
    """Every stage of each pipeline file."""
    return {p: set(entries) for p, entries in locks(cwd).items()}


def base(stage: str) -> str:
    return stage.split("@", 1)[0]


def method_of(stage: str) -> str | None:
    """train_b@0-ewc, run@0-ewc, run@0-task-ewc, run_sgd@0-domain-ewc (a scenario variant's run): ewc (seeds and
    scenarios have no '-', methods no '-')."""
    per_method = base(stage) in PER_METHOD or base(stage).startswith("run_")
    return stage.rsplit("-", 1)[1] if per_method else None


@pytest.fixture(scope="module")
def project(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The git-tracked files, locked as they are, with placeholders for the outputs git does not hold."""
    work = tmp_path_factory.mktemp("method_modules")
    for name in run(["git", "ls-files", "-z"], root).split("\0"):
        if name and (root / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, work / name)
    for pipeline in PIPELINES:  # locked afresh below: no entry of a stage the pipeline no longer has
        (work / pipeline).with_name("dvc.lock").unlink(missing_ok=True)
    git(work, "init", "-q")
    outs, deps = set(), set()
    for entries in json.loads(dvc(work, "status", "--json") or "{}").values():
        for entry in entries:
            if isinstance(entry, dict):
                outs |= {path for path in entry.get("changed outs", {}) if not (work / path).exists()}
                deps |= {path for path in entry.get("changed deps", {}) if not (work / path).exists()}
    for path in sorted(outs | deps):  # a dependency missing here is another stage's output, or inside one
        if any(other.startswith(f"{path}/") for other in outs | deps):  # a directory that holds some of them
            (work / path).mkdir(parents=True, exist_ok=True)
            continue
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(f"placeholder for {path}\n")
    dvc(work, "commit", "-f", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the project, locked as it stands")
    assert status(work, per_file=True) == {p: set() for p in PIPELINES}
    return work


def test_only_check_params_the_aggregates_and_a_methods_own_stages_list_the_registry(project: Path):
    """The deps DVC resolved (the locks): a stage of one method lists cllab/methods/__init__.py and its own module,
    check_params and the stages of every method the directory, any other stage __init__.py alone. (Before the split
    every stage listed cllab/methods.py, so any new method reran all 59 stages of ./dvc.yaml.)"""
    for pipeline, lock in locks(project).items():
        for stage, entry in lock.items():
            registry = {d["path"] for d in entry["deps"] if d["path"].startswith("cllab/methods")}
            if method_of(stage):
                assert registry == {"cllab/methods/__init__.py", f"cllab/methods/{method_of(stage)}.py"}, stage
            elif base(stage) in EVERY_METHOD:
                assert registry == {"cllab/methods"}, stage
            else:
                assert registry == {"cllab/methods/__init__.py"}, stage


def test_python_byte_code_does_not_change_the_registry_directory(project: Path):
    """`cllab/methods` is a directory dependency: the __pycache__ an import leaves in it must not change its hash."""
    cache = project / "cllab" / "methods" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "l2.cpython-311.pyc").write_bytes(b"not a real byte-code file")
    try:
        assert status(project) == {p: set() for p in PIPELINES}
    finally:
        shutil.rmtree(cache)


def test_editing_the_shared_part_of_the_registry_reruns_every_stage(project: Path):
    """The control: the comparison below sees a change in the registry's shared file in every stage that imports it
    (all of them), so that a stage missing from it below is one that truly does not depend on the new method."""
    init = project / "cllab" / "methods" / "__init__.py"
    original = init.read_text()
    init.write_text(original + "# an edit\n")
    try:
        assert status(project) == stages(project)
    finally:
        init.write_text(original)
    assert status(project) == {p: set() for p in PIPELINES}


def test_editing_one_method_reruns_only_its_stages_and_those_of_every_method(project: Path):
    module = project / "cllab" / "methods" / "si.py"
    original = module.read_text()
    module.write_text(original + "# an edit\n")
    try:
        for pipeline, changed in status(project).items():
            assert changed == {s for s in stages(project)[pipeline]
                               if method_of(s) == "si" or base(s) in EVERY_METHOD}, pipeline
    finally:
        module.write_text(original)
    assert status(project) == {p: set() for p in PIPELINES}


def test_adding_a_method_runs_only_its_stages_check_params_and_the_aggregates(project: Path):
    before = stages(project)
    module = (project / "cllab/methods/l2.py").read_text()
    twin = module.replace('Method("l2", "L2", "#1f77b4"', 'Method("l2_twin", "L2 twin", "#aa1133"').replace(
        "order=20", "order=21")
    assert twin.count("l2_twin") == 1 and "order=21" in twin
    (project / "cllab/methods/l2_twin.py").write_text(twin)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["methods"].append("l2_twin")
    params["train_b"]["l2_twin"] = {"lambda": 0.3}
    params["sequence"]["methods"].append("l2_twin")
    params["sequence"]["method"]["l2_twin"] = {"lambda": 0.001}
    params["scenarios"]["methods"].append("l2_twin")
    params["scenarios"]["method"]["l2_twin"] = {s: {"lambda": 1} for s in params["scenarios"]["scenarios"]}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([sys.executable, "-m", "cllab", "check"], project)  # the new method is valid everywhere

    seeds, scenarios = params["seeds"], params["scenarios"]["scenarios"]
    new = {
        "dvc.yaml": {f"train_b@{s}-l2_twin" for s in seeds},
        "sweep/dvc.yaml": set(),
        "sequence/dvc.yaml": {f"run@{s}-l2_twin" for s in params["sequence"]["seeds"]},
        "sequence/paper/dvc.yaml": set(),  # its methods come from sequence/paper/params.yaml, not edited here
        "scenarios/dvc.yaml": {f"run@{s}-{sc}-l2_twin" for s in params["scenarios"]["seeds"] for sc in scenarios},
    }
    changed = status(project, per_file=True)
    for pipeline in PIPELINES:
        every_method = {s for s in before[pipeline] if base(s) in EVERY_METHOD}
        assert changed[pipeline] == every_method | new[pipeline], pipeline
        untouched = before[pipeline] - every_method
        assert not changed[pipeline] & untouched, (pipeline, changed[pipeline] & untouched)
    assert {"prepare", "mnist", "train_a@0", "train_joint@0", "train_b@0-l2"} <= before["dvc.yaml"] - changed["dvc.yaml"]
    assert {"joint@0", "run@0-l2"} <= before["sequence/dvc.yaml"] - changed["sequence/dvc.yaml"]
