"""Bad params stop every pipeline at its check_params stage, with one line naming the key (issue 29).

A table of mutations generated from the real params.yaml and sequence/paper/params.yaml (no hypothesis): every
leaf gets the wrong type (string, number, list, mapping, null, bool, empty string), values out of range (kept where
the key's Spec in cllab/schema.py rejects them; a sweep point's λ: its method's λ Spec), NaN and ±inf; every mapping
key goes missing (but a scenario variant, or a key of scenarios.train a variant replaces, may); every section gets
an unknown key and becomes a scalar, a list or null; train_b and sequence.method get unknown methods; every list
becomes a scalar, a mapping, empty, gets a duplicate, a bad item or unknown method names (a list that may be empty,
a variant's, gets an unknown item instead); sequence.methods gets a method without its sequence.method settings; the
file gets an unknown top-level key. A key left out of the overrides file is read from params.yaml, so that file has
no "missing" cases.

In process (~3,100 cases, ~15 s): each case must be rejected by `python -m cllab check`'s check() and by the loader
of the configuration the key belongs to, with a ParamsError of one line naming the dotted key.

With DVC (`slow`: 64 runs, ~4 min on 2 cores): in a git-committed copy of the working tree (committed results,
the DVC outputs present, the real MNIST files, some stage after the checks of every pipeline out of date), one case
per mutation kind and pipeline file runs the real `dvc repro <pipeline>` (every check_params tracks both params files
whole, so each case is one its check sees); a few run `dvc repro <one stage>` and `dvc exp run -S key=value`.
Each must exit non-zero with exactly one `error:` line naming the key (or DVC's own error line naming it; or, where
DVC interpolates the key and cannot parse the dvc.yaml files, `python -m cllab check` naming it), run no stage but
a check_params (and `mnist`), and leave git status clean, every other file untouched and `dvc status` as it was.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from cllab import __main__ as cllab_main
from cllab import methods as methods_lib
from cllab import params as params_lib
from cllab import scenparams, seqparams
from cllab.schema import Spec, one_of

ROOT = Path(__file__).resolve().parents[1]
PARAMS, PAPER = "params.yaml", "sequence/paper/params.yaml"
PIPELINES = ("dvc.yaml", "sweep/dvc.yaml", "sequence/dvc.yaml", "sequence/paper/dvc.yaml", "scenarios/dvc.yaml")
GOOD = {PARAMS: yaml.safe_load((ROOT / PARAMS).read_text()), PAPER: yaml.safe_load((ROOT / PAPER).read_text())}
EXTRA, UNKNOWN = "unexpected_key", "bogus"  # an unknown key's and an unknown method's name
DELETE = object()  # a case's value that removes the key
TWO_TASK, SEQUENCE = methods_lib.names("two_task"), methods_lib.names("sequence")
METHOD_SECTIONS = {("train_b",): TWO_TASK, ("sequence", "method"): SEQUENCE}


# ---------------------------------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class Case:
    """One mutation of one params file: set the node at `path` to `value` (DELETE: remove it)."""

    file: str
    path: tuple
    value: Any
    kind: str
    named: str  # the dotted key the one-line error must name

    @property
    def key(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(self.path))

    def __str__(self) -> str:
        shown = "<missing>" if self.value is DELETE else repr(self.value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return f"{'paper:' if self.file == PAPER else ''}{self.key}={shown} ({self.kind})"

    def docs(self) -> dict[str, Any]:
        """Both params files with this case applied."""
        docs = copy.deepcopy(GOOD)
        node = docs[self.file]
        for key in self.path[:-1]:
            node = node[key]
        if self.value is DELETE:
            del node[self.path[-1]]
        else:
            node[self.path[-1]] = copy.deepcopy(self.value)
        return docs

    @property
    def section(self) -> str:
        return str(self.path[0])


def dotted(path: tuple) -> str:
    """The dotted key of a path, up to its first list index (an item is reported by its list's key)."""
    keys = []
    for p in path:
        if isinstance(p, int):
            break
        keys.append(str(p))
    return ".".join(keys)


def walk(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every node of a YAML document with its path, the root first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, path + (i,))


def full_schema() -> dict[str, Any]:
    """params.yaml's schema with the `sequence` and `scenarios` sections' own (every method's settings)."""
    return {**params_lib.schema(), "sequence": seqparams.schema(),
            "scenarios": scenparams.schema(None, GOOD[PARAMS]["scenarios"]["variants"])}


def spec_at(doc: dict, path: tuple) -> Spec | None:
    """The Spec a leaf is checked against; a sweep point's λ: its method's λ Spec (as train_b.<method>.lambda's)."""
    node: Any = full_schema()
    for i, key in enumerate(path):
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, Spec) and isinstance(key, int) and node.item is not None:
            node = node.item
        elif path[:i] == ("sweep", "optimizers"):
            node = params_lib.OPTIMIZER
        elif path[:i] == ("sweep", "points"):
            point = doc["sweep"]["points"][key]
            node = {"method": one_of(*TWO_TASK), "lambda": methods_lib.get(point["method"]).lambda_spec}
        else:
            return None
        if node is None:
            return None
    return node if isinstance(node, Spec) else None


def leaf_cases(file: str, doc: dict, path: tuple, value: Any) -> Iterator[Case]:
    """Wrong types, NaN and ±inf (always bad here), and out-of-range values that the key's Spec rejects."""
    named, is_text = dotted(path), isinstance(value, str)
    always = [("list for scalar", [value]), ("mapping for scalar", {"value": value}), ("null", None)]
    if is_text:
        always += [("bool for string", True), ("empty string", "")]
        maybe = [("number for string", 7), ("unknown name", UNKNOWN), ("out of range", "/abs"),
                 ("out of range", "../outside")]
    else:
        always += [("string for number", "x"), ("bool for number", True), ("not finite", math.nan),
                   ("not finite", math.inf), ("not finite", -math.inf), ("out of range", -1)]
        maybe = [("out of range", v) for v in (0, 1, 0.5, 1.5, value + 0.5)]
    if path[-1] == "method" and isinstance(path[-2], int):  # a sweep point's method
        maybe = [("list: unknown name" if v == UNKNOWN else k, v) for k, v in maybe]
    for kind, bad in always:
        yield Case(file, path, bad, kind, named)
    spec = spec_at(doc, path)
    for kind, bad in maybe:
        if spec is not None and bad != value and not spec.check(bad):
            yield Case(file, path, bad, kind, named)


def list_cases(file: str, doc: dict, path: tuple, value: list) -> Iterator[Case]:
    """A list as a scalar, a mapping, empty, with a duplicate, a bad item; method lists: unknown names."""
    named = dotted(path)
    if not value:  # a list that may be empty (a variant run nowhere): a scalar, a mapping, an unknown item
        yield Case(file, path, "x", "list: scalar", named)
        yield Case(file, path, {"value": 1}, "list: mapping", named)
        yield Case(file, path, [UNKNOWN], "list: unknown name" if path[-1] == "methods" else "list: bad item", named)
        return
    yield Case(file, path, value[0], "list: scalar", named)
    yield Case(file, path, {"value": value[0]}, "list: mapping", named)
    if path[:2] != ("scenarios", "variants"):  # a variant's lists may be empty (it runs nowhere)
        yield Case(file, path, [], "list: empty", named)
    yield Case(file, path, value + [value[0]], "list: duplicate", named)
    if path[-1] != "methods":
        if not isinstance(value[0], dict):
            yield Case(file, path, value + [-1], "list: bad item", named)
        return
    others = [n for n in SEQUENCE if n not in TWO_TASK] if path == ("methods",) else []
    for name in [UNKNOWN, "joint", *others[:1]]:
        yield Case(file, path, value + [name], "list: unknown name", named)
    if path == ("sequence", "methods"):  # a method run without its sequence.method.<name> settings
        merged = {**GOOD[PARAMS]["sequence"]["method"], **(doc["sequence"].get("method", {}))}
        lacking = next(n for n in SEQUENCE if n not in merged)
        yield Case(file, path, value + [lacking], "method without settings", f"sequence.method.{lacking}")


def mapping_cases(file: str, path: tuple, value: dict) -> Iterator[Case]:
    """A section as a scalar, a list or null, with an unknown key; train_b and sequence.method: unknown methods."""
    named, in_list = dotted(path), any(isinstance(p, int) for p in path)
    for kind, bad in (("section as scalar", 5), ("section as list", [1]), ("null", None)):
        yield Case(file, path, bad, kind, named)
    yield Case(file, path + (EXTRA,), 1, "extra key", named if in_list else f"{named}.{EXTRA}")
    if path in METHOD_SECTIONS:
        foreign = [n for n in SEQUENCE if n not in METHOD_SECTIONS[path]]  # a method of the other experiment
        for name in [UNKNOWN, *foreign[:1]]:
            yield Case(file, path + (name,), {"lambda": 1}, "unknown method", f"{named}.{name}")


def optional(path: tuple) -> bool:
    """A key that may be left out: a scenario variant, or a key of scenarios.train a variant replaces."""
    return path[:2] == ("scenarios", "variants") and (len(path) == 3 or (len(path) == 5 and path[3] == "train"))


def file_cases(file: str) -> Iterator[Case]:
    """Every mutation of one params file."""
    doc = GOOD[file]
    yield Case(file, (EXTRA,), 1, "extra top-level key", EXTRA)
    for path, value in walk(doc):
        if not path:
            continue
        if isinstance(path[-1], str) and file == PARAMS and not optional(path):  # the overrides file may leave any
            # key out
            yield Case(file, path, DELETE, "missing", dotted(path))
        if isinstance(value, dict):
            yield from mapping_cases(file, path, value)
        elif isinstance(value, list):
            yield from list_cases(file, doc, path, value)
        else:
            yield from leaf_cases(file, doc, path, value)
    if file == PARAMS:  # a cross-key check: no more curve tasks than tasks
        seq = doc["sequence"]
        yield Case(file, ("sequence", "curve_tasks"), seq["num_tasks"] + 1, "out of range", "sequence.curve_tasks")


def all_cases() -> list[Case]:
    unique: dict[str, Case] = {}
    for file in (PARAMS, PAPER):
        for case in file_cases(file):
            unique.setdefault(str(case), case)
    return list(unique.values())


CASES = all_cases()


class served:
    """Within the block, cllab reads `docs` (path -> parsed YAML) instead of the files (check() reads params.yaml
    three times and the overrides once per case: parsing YAML each time would take a minute)."""

    def __init__(self, docs: dict[str, Any]):
        self.docs, self.saved = docs, params_lib.read_yaml

    def __enter__(self):
        params_lib.read_yaml = lambda path, hint: copy.deepcopy(self.docs[str(path)])

    def __exit__(self, *exc):
        params_lib.read_yaml = self.saved


def rejection(loader, docs: dict[str, Any]) -> str | None:
    """The ParamsError message of `loader()` on `docs`, or None if it accepts them."""
    with served(docs):
        try:
            loader()
        except params_lib.ParamsError as err:
            return str(err)
    return None


LOADERS = {  # the loader each pipeline's stages (and its check_params) call
    "dvc.yaml": lambda: params_lib.load(PARAMS),
    "sweep/dvc.yaml": lambda: params_lib.load(PARAMS),
    "sequence/dvc.yaml": lambda: seqparams.load(PARAMS),
    "sequence/paper/dvc.yaml": lambda: seqparams.load(PARAMS, overrides=PAPER),
    "scenarios/dvc.yaml": lambda: scenparams.load(PARAMS),
}


def home(case: Case) -> str:
    """The pipeline whose keys the case mutates."""
    if case.file == PAPER:
        return "sequence/paper/dvc.yaml"
    return {"sweep": "sweep/dvc.yaml", "sequence": "sequence/dvc.yaml",
            "scenarios": "scenarios/dvc.yaml"}.get(case.section, "dvc.yaml")


def names_key(message: str, key: str) -> bool:
    """Whether a message names the dotted key itself (not a longer key that ends or starts with it)."""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message) is not None


def one_line_naming(message: str, key: str) -> str | None:
    """What is wrong with an error message that should be one line naming `key` (None: nothing)."""
    if "\n" in message:
        return f"more than one line: {message!r}"
    if not message.startswith((f"{PARAMS}: ", f"{PAPER}: ")):
        return f"does not start with the file name: {message!r}"
    if not names_key(message, key):
        return f"does not name {key}: {message!r}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# In process


def test_the_table_has_every_mutation_kind_for_both_files():
    """Every kind of mutation is in the table, for params.yaml and for the overrides file, hundreds in all."""
    kinds = {(c.file, c.kind) for c in CASES}
    for kind in ("list for scalar", "mapping for scalar", "null", "string for number", "number for string",
                 "bool for number", "empty string", "unknown name", "out of range", "not finite", "extra key",
                 "extra top-level key", "unknown method", "section as scalar", "list: scalar", "list: empty",
                 "list: duplicate", "list: unknown name", "method without settings"):
        assert (PARAMS, kind) in kinds and (PAPER, kind) in kinds, kind
    assert (PARAMS, "missing") in kinds and (PARAMS, "list: bad item") in kinds
    assert len(CASES) > 500


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_bad_value_is_rejected_in_process_with_one_line_naming_the_key(case: Case):
    """`python -m cllab check`'s check() and the key's own pipeline's loader reject it, naming the key."""
    docs = case.docs()
    with served(docs):
        with pytest.raises(params_lib.ParamsError) as err:
            cllab_main.check(PARAMS)
    problems = [f"check(): {p}" for p in [one_line_naming(str(err.value), case.named)] if p]
    own = rejection(LOADERS[home(case)], docs)
    if own is None:
        problems.append(f"{home(case)}'s loader accepts it")
    elif one_line_naming(own, case.named):
        problems.append(f"{home(case)}'s loader: {one_line_naming(own, case.named)}")
    assert not problems, "; ".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# With DVC: which cases, in which pipeline


def check_params_keys(pipeline: str) -> set[tuple[str, str]]:
    """(params file, key) of every params entry of a pipeline's check_params stage, paths from the project root."""
    stage = yaml.safe_load((ROOT / pipeline).read_text())["stages"]["check_params"]
    keys = set()
    for entry in stage["params"]:
        if isinstance(entry, str):
            keys.add((PARAMS, entry))
        else:
            for file, listed in entry.items():  # no list: the whole file
                keys.update((file, k) for k in listed) if listed else keys.add((file, ""))
    return keys


def interpolated_keys() -> set[str]:
    """The params keys DVC itself reads while parsing the dvc.yaml files (${...} and `vars:` sections)."""
    keys = set()
    for pipeline in PIPELINES:
        text = (ROOT / pipeline).read_text()
        keys.update(k for k in re.findall(r"\$\{([\w.]+)\}", text) if not k.startswith("item."))
        for entry in yaml.safe_load(text).get("vars", []):
            keys.add(str(entry).rsplit(":", 1)[-1])
    return keys


CHECKED = {p: check_params_keys(p) for p in PIPELINES}
INTERPOLATED = interpolated_keys()


def covers(keys: set[tuple[str, str]], case: Case) -> bool:
    """Whether DVC sees the case as a change of one of these params keys."""
    key = dotted(case.path)
    return any(file == case.file and (k == "" or key == k or key.startswith(k + ".") or k.startswith(key + "."))
               for file, k in keys)


def tracked(pipeline: str, case: Case, rejected_by: set[str]) -> bool:
    """Whether a check_params that `dvc repro <pipeline>` runs first would see the case (every pipeline's stages
    depend on ./dvc.yaml's check_params through data/raw or data/prepared)."""
    return covers(CHECKED[pipeline], case) or ("dvc.yaml" in rejected_by and covers(CHECKED["dvc.yaml"], case))


def own(pipeline: str, case: Case) -> bool:
    """Whether the case mutates the pipeline's own keys (the paper's: its file's, and params.yaml's `sequence`)."""
    return home(case) == pipeline or (pipeline == "sequence/paper/dvc.yaml" and case.section == "sequence")


def area(case: Case) -> str:
    """The section and sub-section a case mutates (to spread the DVC runs over the file)."""
    return dotted(case.path[:2])


DVC_KINDS = {  # the kinds one case each stands for in the DVC runs
    "wrong type": ("string for number", "number for string", "list for scalar", "mapping for scalar", "null",
                   "bool for number", "bool for string", "section as scalar", "section as list", "list: mapping"),
    "out of range": ("out of range",), "not finite": ("not finite",), "missing": ("missing",),
    "extra key": ("extra key",), "unknown method": ("unknown method",), "list: scalar": ("list: scalar",),
    "list: empty": ("list: empty",), "list: duplicate": ("list: duplicate",),
    "list: unknown name or bad item": ("list: unknown name", "list: bad item"),
    "method without settings": ("method without settings",),
}
WRONG_TYPE = {  # which wrong type each pipeline's run uses (a different one each)
    "dvc.yaml": "string for number", "sweep/dvc.yaml": "mapping for scalar", "sequence/dvc.yaml": "null",
    "sequence/paper/dvc.yaml": "number for string", "scenarios/dvc.yaml": "bool for number",
}


def rejecting_pipelines() -> dict[str, set[str]]:
    """For each case (by its id), the pipelines whose loader rejects it."""
    verdicts = {}
    for case in CASES:
        docs = case.docs()
        verdicts[str(case)] = {p for p in PIPELINES if rejection(LOADERS[p], docs) is not None}
    return verdicts


def dvc_cases() -> list[tuple[str, Case]]:
    """(pipeline, case): per pipeline one case of each kind (its own keys first, a new section each time where
    possible); and a prepare.raw_dir that DVC cannot put in a path."""
    rejected, chosen = REJECTED, []
    for pipeline in PIPELINES:
        usable = [c for c in CASES if pipeline in rejected[str(c)]]
        usable.sort(key=lambda c: (c.file != PAPER, c.kind != WRONG_TYPE[pipeline]))
        areas: set[str] = set()
        for kinds in DVC_KINDS.values():
            candidates = [c for c in usable if c.kind in kinds]
            candidates = [c for c in candidates if own(pipeline, c)] or candidates
            # a key DVC reads itself only where that is the point (a scalar where DVC expands a list)
            candidates = [c for c in candidates if interpolated(c.named) == (kinds == ("list: scalar",))] or candidates
            candidates.sort(key=lambda c: c.kind == "out of range" and isinstance(c.value, str))  # numbers first
            fresh = [c for c in candidates if area(c) not in areas] or candidates
            if fresh:
                chosen.append((pipeline, fresh[0]))
                areas.add(area(fresh[0]))
    for pipeline, value in (("dvc.yaml", None), ("sequence/dvc.yaml", 7)):  # DVC puts prepare.raw_dir in paths
        chosen.append((pipeline, case_at(PARAMS, "prepare.raw_dir", value)))
    return chosen


REJECTED = rejecting_pipelines()


def test_every_pipelines_check_tracks_every_key_its_stages_reject():
    """Each case a pipeline's loader rejects is a change of a params key that a check_params upstream of that
    pipeline's stages tracks, so DVC reruns that check, not a stage, when the value goes bad (a check that tracked
    fewer keys than the stages validate once let a stage delete its outputs first)."""
    untracked = [f"{pipeline}: {case}" for case in CASES for pipeline in REJECTED[str(case)]
                 if not tracked(pipeline, case, REJECTED[str(case)])]
    assert not untracked, untracked[:10]


def case_at(file: str, key: str, value: Any) -> Case:
    """The table's case setting `key` (dotted) of `file` to `value`."""
    return next(c for c in CASES
                if c.file == file and c.key == key and type(c.value) is type(value) and c.value == value)


SEED = GOOD[PARAMS]["seeds"][0]
ONE_STAGE = [  # (pipeline, dvc arguments, case): a single stage named on the command line
    ("dvc.yaml", ["repro", f"train_b@{SEED}-ewc"], case_at(PARAMS, "train_b.ewc.lambda", -1)),
    ("sweep/dvc.yaml", ["repro", f"sweep/dvc.yaml:width@{GOOD[PARAMS]['sweep']['widths'][0]}"],
     case_at(PARAMS, "sweep.seed", -1)),
    ("sequence/dvc.yaml", ["repro", f"sequence/dvc.yaml:run@{GOOD[PARAMS]['sequence']['seeds'][0]}-ewc"],
     case_at(PARAMS, "sequence.method.ewc.lambda", -1)),
    ("sequence/paper/dvc.yaml", ["repro", f"sequence/paper/dvc.yaml:run@{GOOD[PAPER]['sequence']['seeds'][0]}-ewc"],
     case_at(PAPER, "sequence.method.ewc.lambda", -1)),
    ("scenarios/dvc.yaml", ["repro", f"scenarios/dvc.yaml:run@{GOOD[PARAMS]['scenarios']['seeds'][0]}-class-ewc"],
     case_at(PARAMS, "scenarios.method.ewc.class.lambda", -1)),
]
EXP_RUN = [  # (pipeline, case): `dvc exp run [pipeline] -S key=value`
    ("dvc.yaml", case_at(PARAMS, "train_b.ewc.lambda", -1)),
    ("sweep/dvc.yaml", case_at(PARAMS, "sweep.seed", -1)),
    ("sequence/dvc.yaml", case_at(PARAMS, "sequence.num_tasks", 1)),
    ("sequence/paper/dvc.yaml", case_at(PAPER, "sequence.train.epochs", 0)),
    ("scenarios/dvc.yaml", case_at(PARAMS, "scenarios.train.iterations", 0)),
]


# ---------------------------------------------------------------------------------------------------------------
# With DVC: the project copy


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """A command's result; on timeout its whole process group is killed and the test fails."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        for lock in (".dvc/tmp/rwlock", ".dvc/tmp/lock"):  # a killed DVC can leave them corrupt
            (cwd / lock).unlink(missing_ok=True)
        raise AssertionError(f"{' '.join(cmd)}: still running after {timeout} s (killed)") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def git(cwd: Path, *args: str) -> str:
    result = run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def copy_files(root: Path, dest: Path, names: list[str]) -> None:
    for name in names:
        source = root / name
        if source.is_file():  # the working tree may be changing while we copy
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(source, dest / name)
            except FileNotFoundError:
                pass


SKIPPED_DIRS = {".git", ".dvc/tmp", ".dvc/cache"}


def snapshot(work: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file of the copy but git's and DVC's own (tracked, ignored and DVC outputs alike)."""
    files = {}
    for directory, subdirs, names in os.walk(work):
        rel = Path(directory).relative_to(work)
        subdirs[:] = [d for d in subdirs if d not in ("__pycache__", ".pytest_cache")
                      and (rel / d).as_posix() not in SKIPPED_DIRS]
        for name in names:
            stat = os.lstat(Path(directory) / name)
            files[(rel / name).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return {k: v for k, v in files.items() if k not in (PARAMS, PAPER)}


def dvc_status(work: Path) -> dict:
    result = dvc(work, "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout or "{}")


class Project:
    """The copy: its clean `dvc status`, and a reset to its last commit (and its git-ignored DVC outputs, from
    hard links kept aside: stages replace files, never rewrite them in place) after a case that changed something."""

    def __init__(self, work: Path, backup: Path):
        self.work, self.backup = work, backup
        self.originals = {f: (work / f).read_bytes() for f in (PARAMS, PAPER)}
        self.status = dvc_status(work)

    def restore_params(self) -> None:
        for file, data in self.originals.items():
            (self.work / file).write_bytes(data)

    def reset(self) -> None:
        git(self.work, "checkout", "-q", "--", ".")
        git(self.work, "clean", "-fdq")
        for kept in self.backup.rglob("*"):
            target = self.work / kept.relative_to(self.backup)
            if kept.is_file() and not (target.exists() and os.path.samefile(kept, target)):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                os.link(kept, target)
        self.status = dvc_status(self.work)


STALE = ("stages/prepare.py", "stages/sequence_run.py", "stages/scenario_run.py")  # edited in the copy: stages after the checks have work


def copy_dir_manifests(root: Path, work: Path) -> None:
    """The .dir entries of the directory outputs the locks record, from the project's cache: without them the
    forced checkout that `dvc exp run` does first deletes those outputs (it cannot tell they are unchanged)."""
    for lock in work.rglob("dvc.lock"):
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                digest = out.get("md5") or ""
                source = root / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
                if digest.endswith(".dir") and source.is_file():
                    copy_files(source.parent, work / ".dvc" / "cache" / "files" / "md5" / digest[:2], [source.name])


@pytest.fixture(scope="module")
def project(root: Path, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A self-contained copy of the working tree, committed to a new git repository: the sources and committed
    results, the DVC outputs present (data/prepared, models, evals, the DVCLive logs and per-seed curves:
    git-ignored) with the cache's .dir manifests, the four MNIST files in data/raw, every check_params and mnist up
    to date, and a comment line added to stages/prepare.py, stages/sequence_run.py and stages/scenario_run.py, so
    that in every pipeline some stage after the checks has work to do when the bad value comes (the state in which
    running anything but a check would cost outputs; it makes the outcome independent of the state of the working
    tree copied)."""
    work, backup = tmp_path_factory.mktemp("bad_params"), tmp_path_factory.mktemp("outputs")
    listed = run(["git", "ls-files", "-co", "--exclude-standard"], root).stdout.splitlines()
    outputs = run(["git", "ls-files", "-oi", "--exclude-standard", "--", "data/prepared", "models", "evals", "dvclive",
                   "plots/curves"], root).stdout.splitlines()
    copy_files(root, work, listed + outputs)
    copy_files(mnist_dir, work / "data" / "raw", [n.name for n in mnist_dir.glob("*.gz")])
    copy_dir_manifests(root, work)
    for name in STALE:
        with open(work / name, "a") as script:
            script.write("# (tests/test_bad_params.py: an edit, so that this stage has work to do)\n")
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the working tree")
    checks = ["check_params", "mnist", *(f"{p}:check_params" for p in PIPELINES[1:])]
    result = dvc(work, "repro", *checks)
    assert result.returncode == 0, result.stdout + result.stderr
    relocked = git(work, "status", "--porcelain")  # mnist runs anyway: the copy has no cached copy of data/raw
    if relocked:
        ran = ", ".join(re.findall(r"Running stage '([^']+)'", result.stdout))
        warnings.warn(f"the committed locks did not record every check and mnist (ran: {ran}):\n{relocked}")
        git(work, "add", "-A")
        git(work, "commit", "-qm", "check_params and mnist locked")
    assert not git(work, "status", "--porcelain")
    for name in outputs:
        if (work / name).is_file():
            (backup / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(work / name, backup / name)
    return Project(work, backup)


# ---------------------------------------------------------------------------------------------------------------
# With DVC: one run


def write_case(work: Path, case: Case) -> None:
    """The mutated file, written as YAML (its comments go; the restore puts back the original bytes)."""
    (work / case.file).write_text(yaml.safe_dump(case.docs()[case.file], sort_keys=False, allow_unicode=True))


def interpolated(key: str) -> bool:
    """Whether DVC reads this key (or a key inside it) when it parses the dvc.yaml files."""
    return any(k == key or k.startswith(key + ".") for k in INTERPOLATED)


def outcome_problems(result: subprocess.CompletedProcess, case: Case, cli: subprocess.CompletedProcess) -> list[str]:
    """What is wrong with a bad-params run's exit code and output (empty: nothing)."""
    output = result.stdout + result.stderr
    ran = re.findall(r"Running stage '([^']+)'", output)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    problems = []
    if result.returncode == 0:
        problems.append("exit code 0")
    if not ran and not errors and result.returncode != 0:  # DVC refused before any stage: nothing ran
        dvc_lines = [line for line in output.splitlines() if line.startswith("ERROR: ")]
        if not dvc_lines:
            problems.append("no stage ran, and DVC printed no ERROR line")
        if len(dvc_lines) == 1 and names_key(dvc_lines[0].replace("'", " "), case.named):
            return problems  # e.g. "Parameters 'runtime' are missing from 'params.yaml'"
        if not interpolated(case.named):
            problems.append(f"DVC refused without naming {case.named} (a key DVC does not interpolate)")
        cli_lines = cli.stderr.strip().splitlines()
        if cli.returncode != 1 or len(cli_lines) != 1 or not names_key(cli_lines[0], case.named):
            problems.append(f"`python -m cllab check` does not name {case.named}: {cli.stderr.strip()!r}")
        return problems
    others = [s for s in ran if not s.endswith("check_params") and s != "mnist"]
    if others:
        problems.append(f"stages other than check_params ran: {', '.join(others)}")
    if len(errors) != 1:
        problems.append(f"{len(errors)} lines start with 'error:'")
    elif one_line_naming(errors[0].removeprefix("error: "), case.named):
        problems.append(one_line_naming(errors[0].removeprefix("error: "), case.named))
    failed = re.findall(r"ERROR: failed to reproduce '([^']+)'", output)
    if failed and not all(s.endswith("check_params") for s in failed):
        problems.append(f"a stage other than check_params failed: {', '.join(failed)}")
    return problems


def attempt(project: Project, case: Case, args: list[str], mutate: bool = True) -> None:
    """Run DVC on the case and assert it stopped at check_params naming the key, changing nothing."""
    work = project.work
    before, refs = snapshot(work), set(git(work, "for-each-ref", "--format=%(refname)").split())
    if mutate:
        write_case(work, case)
    result = dvc(work, *args)
    cli = run([sys.executable, "-m", "cllab", "check"], work)
    project.restore_params()
    problems = outcome_problems(result, case, cli)
    dirty = git(work, "status", "--porcelain")
    if dirty:
        problems.append(f"git status not clean after restoring the params:\n{dirty}")
    after = snapshot(work)
    touched = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if touched:
        problems.append(f"files created, changed or deleted: {', '.join(touched[:10])}")
    new_refs = {r for r in set(git(work, "for-each-ref", "--format=%(refname)").split()) - refs
                if not r.startswith("refs/exps/exec/")}
    if new_refs:
        problems.append(f"new git refs: {', '.join(sorted(new_refs))}")
    status = dvc_status(work)
    if status != project.status:
        changed = sorted(k for k in status.keys() | project.status.keys() if status.get(k) != project.status.get(k))
        problems.append(f"`dvc status` changed for {', '.join(changed[:10])}")
    for ref in git(work, "for-each-ref", "--format=%(refname)", "refs/exps").split():  # `dvc exp run`'s EXEC_HEAD
        git(work, "update-ref", "-d", ref)
    if problems:
        project.reset()
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-12:])
    assert not problems, f"{' '.join(args)} with {case}:\n- " + "\n- ".join(problems) + f"\n--- output:\n{tail}"


def repro_args(pipeline: str) -> list[str]:
    return ["repro"] if pipeline == "dvc.yaml" else ["repro", pipeline]


@pytest.mark.slow
@pytest.mark.parametrize("pipeline,case", dvc_cases(), ids=lambda v: v if isinstance(v, str) else str(v))
def test_dvc_repro_stops_at_check_params_naming_the_key_and_changes_nothing(project, pipeline, case):
    """`dvc repro <pipeline>` with one bad value: non-zero exit, one line naming the key, nothing else ran or moved."""
    attempt(project, case, repro_args(pipeline))


@pytest.mark.slow
@pytest.mark.parametrize("pipeline,args,case", ONE_STAGE, ids=[" ".join(a) for _, a, _ in ONE_STAGE])
def test_dvc_repro_of_one_stage_stops_at_check_params(project, pipeline, args, case):
    """`dvc repro <one stage>` runs its pipeline's check_params first, which stops it."""
    attempt(project, case, args)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline,case", EXP_RUN, ids=[f"{p} {c}" for p, c in EXP_RUN])
def test_dvc_exp_run_set_param_stops_at_check_params_and_saves_no_experiment(project, pipeline, case):
    """`dvc exp run -S key=value` with a bad value: the same stop, and no experiment ref left behind."""
    setting = f"{case.file + ':' if case.file != PARAMS else ''}{case.key}={case.value}"
    attempt(project, case, ["exp", "run", *repro_args(pipeline)[1:], "-S", setting], mutate=False)
