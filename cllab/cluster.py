"""Studies on a cluster: a study file expanded into named DVC experiments, each run on a worker of a Dask cluster in
its own clone, shared through the git remote (the experiment's ref) and the DVC remote (its outputs and run-cache).

    python -m cllab.cluster list studies/tiny.yaml                    # the experiments and their -S overrides
    python -m cllab.cluster probe                                     # does the default DVC remote accept writes?
    python -m cllab.cluster run studies/tiny.yaml --local 2           # or --scheduler tcp://host:8786, or --slurm 8
    python -m cllab.cluster collect studies/tiny.yaml                 # dvc exp pull; the table and figure

Before it submits anything the driver checks the study: its values (as `dvc exp run -S` will read them) against the
base commit's params.yaml, the base commit's committed DVC remote against the one it probes, and the committed params
of the study's experiments already on the git remote. Each experiment is then one task (`run_experiment`) that, on
the worker that takes it: skips if its ref is already on the git remote; clones the base commit into its own
directory, with the worker's own DVC cache; checks that the DVC remote accepts writes; runs `dvc exp run --pull -n
<name> -S …`; pushes the outputs, the run-cache and the objects of the run-cache's `cache: false` outputs (which `dvc
push --run-cache` leaves out) and then the experiment's ref (`dvc exp push`), so that a ref on the remote means
everything it needs is there (`publish`); checks that the remote ref is its commit; and returns its timings. Every
command a worker runs is in its own process group under a guard that kills the group if the worker dies. The engine
reschedules a task whose worker died (a failed `dvc exp run` is reported, not retried); the skip makes a rerun of a
finished study, or of one stopped midway, do only what is missing. docs/cluster.md is the manual.
Dask is imported only by `run` (the optional `[cluster]` extra); DVC only in the subprocesses that need it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml

from cllab.errors import LabError

# A name that is one component of a git ref and a DVC experiment name.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# `dvc exp run` output lines that mean the pull phase is over: the first stage is being handled.
FIRST_STAGE = re.compile(r"Running stage '|Stage '[^']+' (is cached|didn't change)")
RAN = re.compile(r"Running stage '([^']+)'")
CACHED = re.compile(r"Stage '([^']+)' is cached")
PROBE_NAME = ".cllab-write-probe"


class ClusterError(LabError):
    """A study that cannot run as configured; the message is one line naming the value and the fix."""


# ---------------------------------------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class Experiment:
    """One experiment of a study: its name, its `-S` overrides and the grid point they come from."""

    name: str
    overrides: tuple[str, ...]
    point: tuple[tuple[str, Any], ...]
    settings: tuple[tuple[str, Any], ...] = ()  # every params key it sets (`set` and its point) and the value


@dataclass(frozen=True)
class Study:
    """A study file expanded: the base revision, the experiments, the seed key and the metrics of its table."""

    name: str
    base: str
    experiments: tuple[Experiment, ...]
    seed_key: str | None
    metrics: tuple[tuple[str, str], ...]  # (metrics file, key)
    path: Path


def override_text(value: Any) -> str:
    """A value as `dvc exp run -S key=value` reads it (Hydra's override grammar): [0, 1], 0.1, true, ewc; a string
    that Hydra would read otherwise (`a b`, `x,y`, `true`, `1`) in single quotes."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value) and value.lower() not in HYDRA_WORDS:
            return value
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


# Bare words Hydra reads as something other than a string
HYDRA_WORDS = {"true", "false", "null", "nan", "inf", "-inf", "+inf"}


def check_override(key: Any, value: Any, source: Path) -> str:
    """`key=value` as `dvc exp run -S` takes it, or ClusterError (one line) if DVC would read back another key or
    value: DVC parses -S with Hydra's override grammar (dvc.utils.hydra.apply_overrides)."""
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*", key):
        raise ClusterError(f"{source}: {key!r} is not a params key: expected a dotted key of params.yaml such as "
                           "train_b.l2.lambda")
    if isinstance(value, dict):
        raise ClusterError(f"{source}: {key} is a mapping ({value!r}): give each of its keys as its own dotted key "
                           f"({key}.<name>: value)")
    text = f"{key}={override_text(value)}"
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (parsed,) = OverridesParser.create().parse_overrides([text])
        back = parsed.value()
    except Exception:  # noqa: BLE001 - Hydra's grammar refuses it: named in one line
        back = MISSING
    if back is MISSING or parsed.key_or_group != key or not _same_value(back, value):
        raise ClusterError(f"{source}: {key}: {value!r} cannot be passed to `dvc exp run -S` unchanged "
                           f"(it would read {text!r} as {back if back is not MISSING else 'an error'!r}): expected "
                           "numbers, true/false, null, strings or lists of them")
    return text


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of the same kind (a bool is not 1, a string is not a number), lists element by element."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return a == b


def name_text(value: Any) -> str:
    """A value as it appears in an experiment's name: [0] -> 0, [0, 1] -> 0_1, 0.1 -> 0.1."""
    if isinstance(value, (list, tuple)):
        return "_".join(name_text(v) for v in value)
    return value if isinstance(value, str) else override_text(value)


def _experiment_name(pattern: str, study: str, point: Mapping[str, Any], source: Path) -> str:
    def field_value(match: re.Match) -> str:
        key = match.group(1)
        if key == "study":
            return study
        if key not in point:
            raise ClusterError(f"{source}: name pattern {pattern!r} names {{{key}}}, which is not a key of the "
                               f"experiment ({', '.join(point) or 'none'}); use one of them or {{study}}")
        return name_text(point[key])

    name = re.sub(r"\{([^{}]+)\}", field_value, pattern)
    if not NAME.fullmatch(name) or ".." in name or name.endswith((".lock", ".")):
        raise ClusterError(f"{source}: experiment name {name!r} (from {pattern!r}) is not a valid git ref name: "
                           "use letters, digits, '.', '_' and '-' only")
    return name


def load_study(path: str | Path) -> Study:
    """Read a study file and expand it into named experiments (every combination of `grid`, then each of `list`,
    each with the overrides of `set`)."""
    from cllab.params import ParamsError, read_yaml

    path = Path(path)
    if path.is_dir():
        raise ClusterError(f"{path}: is a directory, expected a study file (e.g. studies/tiny.yaml)")
    try:
        spec = read_yaml(path, "a study file, e.g. studies/tiny.yaml")
    except ParamsError as error:
        raise ClusterError(str(error)) from None
    if not isinstance(spec, dict):
        raise ClusterError(f"{path}: a study file is a mapping (name, base, set, grid, …), got {type(spec).__name__}")
    known = {"name", "base", "set", "grid", "list", "experiment", "seed", "metrics"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ClusterError(f"{path}: unknown key {unknown[0]!r} (a study has {', '.join(sorted(known))})")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ClusterError(f"{path}: name must be a short name of letters, digits, '.', '_', '-', got {name!r}")
    fixed = spec.get("set") or {}
    grid = spec.get("grid") or {}
    listed = spec.get("list") or []
    for key, value in (("set", fixed), ("grid", grid)):
        if not isinstance(value, dict):
            raise ClusterError(f"{path}: {key} must map params keys to values, got {value!r}")
    for key, value in fixed.items():
        check_override(key, value, path)
    for key, values in grid.items():
        check_override(key, None, path)
        if not isinstance(values, list) or not values:
            raise ClusterError(f"{path}: grid.{key} must be a non-empty list of values, got {values!r}")
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        raise ClusterError(f"{path}: list must be a list of mappings (params key: value), got {listed!r}")
    for key, values in grid.items():
        for value in values:
            check_override(key, value, path)
    for item in listed:
        for key, value in item.items():
            check_override(key, value, path)
    base = spec.get("base", "HEAD")
    if not isinstance(base, str) or not base:
        raise ClusterError(f"{path}: base must be a branch, a tag, HEAD or a commit id (quote an id that YAML reads as "
                           f"a number), got {base!r}")
    pattern = spec.get("experiment")
    if pattern is not None and not isinstance(pattern, str):
        raise ClusterError(f"{path}: experiment must be a name pattern such as '{{study}}-{{seeds}}', got {pattern!r}")
    seed_key = spec.get("seed")
    if seed_key is not None and not isinstance(seed_key, str):
        raise ClusterError(f"{path}: seed must be the params key the table averages over (e.g. seeds), "
                           f"got {seed_key!r}")
    metrics_spec = spec.get("metrics") or []
    if not isinstance(metrics_spec, list):
        raise ClusterError(f"{path}: metrics must be a list of 'file.json:key' entries, got {metrics_spec!r}")
    points = [dict(zip(grid, combination)) for combination in itertools.product(*grid.values())] if grid else []
    points += [dict(item) for item in listed]
    if not points:
        raise ClusterError(f"{path}: no experiments: give a grid (key: [values]) or a list of mappings")
    pattern = pattern or "{study}-" + "-".join(f"{{{k}}}" for k in points[0])
    experiments = []
    for point in points:
        overrides = {**fixed, **point}
        experiments.append(Experiment(
            name=_experiment_name(pattern, name, point, path),
            overrides=tuple(f"{key}={override_text(value)}" for key, value in overrides.items()),
            point=tuple(point.items()),
            settings=tuple(overrides.items()),
        ))
    names = [e.name for e in experiments]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ClusterError(f"{path}: two experiments are named {duplicate!r}: put every varied key in the name "
                           f"pattern ({pattern!r})")
    if seed_key is not None and not all(seed_key in dict(e.point) for e in experiments):
        raise ClusterError(f"{path}: seed: {seed_key!r} must be a key that every experiment varies (grid or list)")
    metrics = []
    for item in metrics_spec:
        file, _, key = str(item).rpartition(":")
        if not isinstance(item, str) or not file or not key:
            raise ClusterError(f"{path}: metrics entries are 'file.json:key', got {item!r}")
        metrics.append((file, key))
    return Study(name=name, base=base, experiments=tuple(experiments), seed_key=seed_key,
                 metrics=tuple(metrics), path=path)


# --------------------------------------------------------------------------------------------------- git and DVC


# Seconds a git command or a probe of the DVC remote may take before it counts as hung (an unreachable host).
TIMEOUT = 600.0


def _environment() -> dict[str, str]:
    # no prompt can hang a worker: git's for a password (GIT_TERMINAL_PROMPT), ssh's for a passphrase or a host key
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0")
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _run(cmd: Sequence[str], cwd: str | Path | None = None, check: bool = True, timeout: float | None = TIMEOUT,
         guarded: bool = False) -> subprocess.CompletedProcess:
    """Run `cmd` (its output captured); ClusterError (one line: the command, its exit and last line) if it fails
    and `check`, or if it takes longer than `timeout` seconds. `guarded`: under the guard (`_guarded`), as every
    command a worker runs is, so that none outlives its worker."""
    if guarded:
        code, lines, errors = _guarded(cmd, Path(cwd or "."), timeout=timeout)
        result = subprocess.CompletedProcess(list(cmd), code, "".join(line for _, line in lines), errors)
    else:
        try:
            result = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=_environment(),
                                    timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"`{_shown(cmd)}` took more than {timeout:.0f} s in {cwd or '.'}: is the remote "
                               "reachable?") from None
    if check and result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise ClusterError(f"`{_shown(cmd)}` failed in {cwd or '.'} (exit {result.returncode}): "
                           f"{strip_password(tail[0])}")
    return result


def _shown(cmd: Sequence[Any]) -> str:
    """A command as a message shows it: any URL's user:password removed."""
    return " ".join(strip_password(str(part)) for part in cmd)


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def _helper(command: str) -> list[str]:
    """`python -P -m cllab.cluster <command>`: this cllab's helper, run in a clone of the base commit. Without -P the
    current directory comes first on sys.path and the clone's own (older) cllab would run instead; `dvc exp run` keeps
    the clone's code on purpose."""
    return [sys.executable, "-P", "-m", "cllab.cluster", command]


def resolve_base(repo: str | Path, base: str) -> str:
    """The commit id of `base` (a branch, tag, HEAD or id) in `repo`."""
    result = _run(["git", "rev-parse", "--verify", f"{base}^{{commit}}"], repo, check=False)
    if result.returncode != 0:
        raise ClusterError(f"base {base!r} is not a commit of {repo}: give a branch, a tag, HEAD or a commit id")
    return result.stdout.strip()


def git_url(repo: str | Path, remote: str) -> str:
    """The URL of git remote `remote` of `repo` (a remote name or already a URL/path); a relative local path is
    resolved against `repo`, as git does there."""
    result = _run(["git", "remote", "get-url", remote], repo, check=False)
    if result.returncode == 0:
        url = result.stdout.strip()
    elif "/" in remote or ":" in remote:
        url = remote
    else:
        url = ""
    if url:  # a relative local path means the repository's; a worker's clone lives elsewhere
        return str((Path(repo) / url).resolve()) if _is_local_path(url) and not os.path.isabs(url) else url
    raise ClusterError(f"{repo}: no git remote {remote!r}: `git remote add {remote} <url>` (the bare repository "
                       "every worker clones from and pushes to)")


def exp_ref(base: str, name: str) -> str:
    """The git ref DVC gives experiment `name` on commit `base`."""
    return f"refs/exps/{base[:2]}/{base[2:]}/{name}"


def remote_experiments(url: str, base: str, guarded: bool = False) -> dict[str, str]:
    """The experiments on commit `base` whose refs are on the git remote at `url`: name -> commit id."""
    out = _run(["git", "ls-remote", url, exp_ref(base, "*")], guarded=guarded).stdout
    return {ref.rsplit("/", 1)[1]: sha for sha, _, ref in (line.partition("\t") for line in out.splitlines()) if ref}


MISSING = object()


def _dotted(params: Any, key: str) -> Any:
    """The value of dotted key `key` ("train_b.l2.lambda") in a params mapping, or MISSING."""
    for part in key.split("."):
        if not isinstance(params, dict) or part not in params:
            return MISSING
        params = params[part]
    return params


def _nested(settings: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The mapping that dotted (key, value) settings stand for: [("train_b.l2.lambda", 1)] -> {"train_b": {"l2":
    {"lambda": 1}}} (the inverse of `_dotted`)."""
    nested: dict[str, Any] = {}
    for key, value in settings:
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def check_finished(repo: str | Path, url: str, base: str, experiments: Sequence[Experiment],
                   on_remote: Mapping[str, str], git_remote: str = "origin") -> None:
    """ClusterError (one line naming the experiment and how to remove it) if an experiment of the study that is
    already on the git remote was run with other values than the study sets now (its name is all the skip looks at):
    fetches those refs' commits into `repo` and compares each key the experiment sets with its committed params.yaml."""
    found = [e for e in experiments if e.name in on_remote]
    if not found:
        return
    _run(["git", "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", url,
          *[exp_ref(base, e.name) for e in found]], repo)
    for experiment in found:
        shown = _run(["git", "show", f"{on_remote[experiment.name]}:params.yaml"], repo, check=False)
        committed = yaml.safe_load(shown.stdout) if shown.returncode == 0 else None
        for key, value in experiment.settings:
            was = _dotted(committed, key)
            if was is MISSING or not _same_value(was, value):
                was_text = "no such key" if was is MISSING else f"{key}={override_text(was)}"
                raise ClusterError(
                    f"{experiment.name} is on {strip_password(url)} with {was_text}, but the study sets "
                    f"{key}={override_text(value)}: "
                    f"remove the stale experiment (`dvc exp remove -g {git_remote} {experiment.name}`) or rename it, "
                    "then run again")


def check_params(repo: str | Path, base: str, study: Study) -> None:
    """ClusterError (one line naming the experiment and the key) unless every experiment's overrides, applied to the
    base commit's params.yaml, pass the project's own check (`python -m cllab check`, every pipeline): a typo or a
    bad value stops the study here rather than on every worker."""
    from cllab import __main__ as lab
    from cllab import params as params_lib
    from cllab import seqparams

    def committed(path: str) -> str | None:
        shown = _run(["git", "show", f"{base}:{path}"], repo, check=False)
        return shown.stdout if shown.returncode == 0 else None

    text = committed("params.yaml")
    if text is None:
        raise ClusterError(f"the base commit {base[:9]} has no params.yaml: is {study.base!r} this project's commit?")
    params = yaml.safe_load(text)
    with tempfile.TemporaryDirectory(prefix="cllab-study-") as tmp:
        root = Path(tmp)
        paper = committed(lab.PAPER)
        if paper is not None:
            (root / lab.PAPER).parent.mkdir(parents=True)
            (root / lab.PAPER).write_text(paper)
        for experiment in study.experiments:
            try:
                merged = seqparams.merge(params, _nested(experiment.settings), "the study",
                                         "the base commit's params.yaml")
                (root / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
                lab.check(root / "params.yaml", root)
            except params_lib.ParamsError as error:
                message = str(error).replace(f"{root / 'params.yaml'}", "params.yaml").replace(f"{root}/", "")
                raise ClusterError(f"{study.path}: experiment {experiment.name}: {message} (the base commit's "
                                   "params.yaml with the study's overrides)") from None


def check_base_on_remote(repo: str | Path, url: str, base: str) -> None:
    """ClusterError unless `base` is reachable from a branch or tag on the git remote (workers clone from there)."""
    out = _run(["git", "ls-remote", "--heads", "--tags", url]).stdout
    for line in out.splitlines():
        tip = line.split("\t", 1)[0]
        known = _run(["git", "cat-file", "-e", f"{tip}^{{commit}}"], repo, check=False).returncode == 0
        if known and _run(["git", "merge-base", "--is-ancestor", base, tip], repo, check=False).returncode == 0:
            return
    raise ClusterError(f"commit {base[:9]} is not on the git remote {strip_password(url)}: push it first (`git push`)")


CREDENTIALS_HINT = ("give every worker the credentials in its environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) "
                    "or in its machine's DVC config (`dvc remote modify --global`): a worker's clone has no "
                    ".dvc/config.local")


def probe_remote(repo: str | Path = ".") -> tuple[str, str]:
    """Write and delete one small object on the default DVC remote of `repo`; ClusterError (one line naming the
    remote and the cause) if it refuses. Returns the remote's name and URL."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        dvc_repo = Repo(str(repo))
    except NotDvcRepoError:
        raise ClusterError(f"{Path(repo).resolve()} is not a DVC repository (no .dvc directory): run from the "
                           "project's root or pass --repo") from None
    with dvc_repo:
        name = dvc_repo.config["core"].get("remote")
        if not name:
            raise ClusterError(f"{repo}: no default DVC remote: `dvc remote add -d <name> <url>` (every worker pushes "
                               "its outputs and run-cache there)")
        section = dvc_repo.config["remote"].get(name)
        if section is None or "url" not in section:
            raise ClusterError(f"{repo}: the default DVC remote {name!r} is not defined (no [remote \"{name}\"] "
                               f"section with a url): `dvc remote add -d {name} <url>`")
        where = section["url"]
        try:
            odb = dvc_repo.cloud.get_remote_odb(None, "push")
            probe = odb.fs.join(odb.path, f"{PROBE_NAME}-{uuid.uuid4().hex}")
            odb.fs.pipe(probe, b"probe")
            odb.fs.rm(probe)
        except Exception as error:  # noqa: BLE001 - any refusal, named in one line
            cause = (str(error).strip().splitlines() or [""])[0][:200]
            raise ClusterError(f"the DVC remote {name!r} refuses writes ({type(error).__name__}: {cause}): check its "
                               f"URL and credentials; {CREDENTIALS_HINT}") from None
    return name, where


def _is_local_path(url: str) -> bool:
    """True for a local path (no scheme such as s3:// and no scp-like host:path)."""
    return "://" not in url and not re.match(r"^[A-Za-z0-9._-]+(@[A-Za-z0-9._-]+)?:", url)


def check_committed_remote(repo: str | Path, base: str, name: str, url: str) -> None:
    """ClusterError (one line) unless the base commit's committed .dvc/config names the default DVC remote `name` at
    `url`, as the working tree does: the driver probes its working tree's config (config.local included), but a
    worker's clone has only the committed one. A relative local remote path is refused (each clone would resolve it
    inside itself)."""
    import configobj

    shown = _run(["git", "show", f"{base}:.dvc/config"], repo, check=False)
    if shown.returncode != 0:
        raise ClusterError(f"the base commit {base[:9]} has no .dvc/config: commit the DVC remote (`dvc remote add -d "
                           f"{name} {url}`, then `git commit .dvc/config`) and push it")
    try:
        config = configobj.ConfigObj(shown.stdout.splitlines())
    except configobj.ConfigObjError as error:
        raise ClusterError(f"the base commit's .dvc/config is not valid ({str(error).splitlines()[0]})") from None
    committed = config.get("core", {}).get("remote")
    committed_url = config.get(f'remote "{committed}"', {}).get("url") if committed else None
    if committed_url and _is_local_path(committed_url) and not os.path.isabs(committed_url):
        raise ClusterError(f"the base commit's DVC remote {committed!r} has a relative path ({committed_url}), which "
                           "each worker would resolve inside its own clone: give an absolute path (`dvc remote modify "
                           f"{committed} url /abs/path`) and commit it")
    if committed != name or not _same_url(committed_url, url):
        raise ClusterError(f"workers would use the base commit's default DVC remote "
                           f"{committed or 'none'} ({strip_password(committed_url or 'no url')}), not {name} "
                           f"({strip_password(url)}) as here (.dvc/config.local?): commit the remote in .dvc/config "
                           f"and push; {CREDENTIALS_HINT}")


def _same_url(committed: str | None, url: str) -> bool:
    if committed is None:
        return False
    if _is_local_path(committed) and _is_local_path(url):
        return os.path.normpath(committed) == os.path.normpath(url)
    return committed.rstrip("/") == url.rstrip("/")


def strip_password(url: str) -> str:
    """`url` without the user:password (or user) part of its authority, to be shown in a message or a log."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", url)


def _push_run_cache_objects(dvc_repo) -> int:
    """Push the objects of every local run-cache entry's outputs, `cache: false` ones included: `dvc push
    --run-cache` sends the entries but not those objects, and a machine that finds such an entry without its objects
    reruns the stage. Returns the number of objects uploaded."""
    runs = Path(dvc_repo.cache.legacy.path) / "runs"
    entries = [(entry.parent.name, entry.name) for entry in runs.glob("*/*/*") if entry.is_file()]
    used = dvc_repo.stage_cache.get_used_objs(entries)
    result = dvc_repo.cloud.push(set().union(*used.values()) if used else set())
    if result.failed:
        raise ClusterError(f"{len(result.failed)} run-cache objects were not uploaded to the DVC remote")
    return len(result.transferred)


def publish(name: str, git_remote: str = "origin", repo: str | Path = ".") -> str:
    """Push experiment `name` of `repo`, objects first and its ref last (a ref on the git remote then means that
    everything it needs is on the DVC remote): `dvc push --run-cache`, the run-cache's objects, `dvc exp push
    --no-cache <git_remote> <name>`. One process: DVC starts once."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        uploaded = dvc_repo.push(run_cache=True)
        uploaded += _push_run_cache_objects(dvc_repo)
        result = dvc_repo.experiments.push(git_remote, [name], push_cache=False)
    pushed = result.get("success", []) + result.get("up_to_date", [])
    if name not in pushed:
        raise ClusterError(f"{name}: `dvc exp push {git_remote} {name}` did not push it ({result})")
    return f"{name}: {uploaded} objects uploaded, ref pushed to {git_remote}"


# ------------------------------------------------------------------------------------------------ one experiment


@dataclass(frozen=True)
class Job:
    """What a worker needs to run one experiment: where to clone from, which commit, which overrides."""

    name: str
    base: str
    git_url: str
    overrides: tuple[str, ...]
    git_remote: str = "origin"


@dataclass
class Outcome:
    """What a worker reports for one experiment; seconds: clone, pull, run, push (and probe) in seconds."""

    name: str
    status: str  # "done", "skipped" (its ref was already on the git remote) or "failed" (`dvc exp run` failed)
    machine: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)  # stages that ran
    cached: list[str] = field(default_factory=list)  # stages restored from the run-cache
    started: float = 0.0  # when the worker took it (seconds since the epoch)
    error: str = ""  # why it failed: one line

    def __post_init__(self) -> None:
        self.seconds = {part: round(value, 2) for part, value in self.seconds.items()}


def machine_dir() -> Path:
    """This machine's working directory: $CLLAB_CLUSTER_DIR, else a folder in the Dask worker's local directory."""
    if os.environ.get("CLLAB_CLUSTER_DIR"):
        return Path(os.environ["CLLAB_CLUSTER_DIR"])
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory) / "cllab"
    except (ImportError, ValueError):
        return Path.cwd() / ".cllab-cluster"


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is already gone
        pass


def _guarded(cmd: Sequence[str], cwd: Path, log: Path | None = None,
             timeout: float | None = None) -> tuple[int, list[tuple[float, str]], str]:
    """Run `cmd` in its own process group under a guard that kills the group if this process dies; its output lines
    (with the time each arrived) are returned, and written to `log` (stderr included) where given, else its stderr is
    returned apart. The group is killed, and waited for, if this thread is interrupted or `timeout` seconds pass
    (then ClusterError)."""
    guard = [*_helper("guard"), str(os.getpid()), "--", *cmd]
    lines: list[tuple[float, str]] = []
    timed_out = threading.Event()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(log, "w")) if log else None
        errors = None if log else stack.enter_context(tempfile.TemporaryFile("w+"))
        proc = subprocess.Popen(guard, cwd=cwd, stdout=subprocess.PIPE, stderr=errors or subprocess.STDOUT,
                                text=True, env=_environment(), start_new_session=True)
        timer = threading.Timer(timeout, lambda: (timed_out.set(), _kill_group(proc))) if timeout else None
        if timer:
            timer.start()
        try:
            for line in proc.stdout:
                lines.append((time.monotonic(), line))
                if out:
                    out.write(line)
                    out.flush()
            code = proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            if timer:
                timer.cancel()
            proc.stdout.close()
        if timed_out.is_set():
            raise ClusterError(f"`{_shown(cmd)}` took more than {timeout:.0f} s in {cwd}: is the remote reachable?")
        if errors:
            errors.seek(0)
        return code, lines, errors.read() if errors else ""


def guard(parent: int, cmd: Sequence[str]) -> int:
    """Run `cmd` in this process's group (the guard's own session); kill the whole group, the guard included, if
    `parent` (the worker) goes away."""
    child = subprocess.Popen(list(cmd))
    while child.poll() is None:
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)
        time.sleep(0.2)
    return child.returncode


def run_experiment(job: Job) -> Outcome:
    """Run one experiment on this machine and push it (the task each worker runs; see the module's docstring)."""
    started = time.time()
    machine = machine_dir()
    label = f"{socket.gethostname()}:{machine}"
    run = functools.partial(_run, guarded=True)  # every command under the guard: none outlives this worker
    if job.name in remote_experiments(job.git_url, job.base, guarded=True):
        return Outcome(job.name, "skipped", label, started=started)
    seconds: dict[str, float] = {}
    start = time.monotonic()
    work = machine / "experiments" / job.name
    if work.exists():
        shutil.rmtree(work)  # left by a run this machine did not finish
    work.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "clone", "--quiet", "--no-checkout", "--origin", job.git_remote, job.git_url, str(work)],
        work.parent)
    run(["git", "checkout", "--quiet", "--detach", job.base], work)
    run(["git", "config", "user.name", "cllab cluster"], work)
    run(["git", "config", "user.email", "cllab-cluster@localhost"], work)
    run(_dvc("config", "--local", "cache.dir", str(machine / "dvc-cache")), work)  # this worker's own cache
    seconds["clone"] = time.monotonic() - start
    start = time.monotonic()
    run(_helper("probe"), work)  # before any training, on this machine too
    seconds["probe"] = time.monotonic() - start
    command = _dvc("exp", "run", "--pull", "-n", job.name, *itertools.chain.from_iterable(("-S", o)
                                                                                         for o in job.overrides))
    start = time.monotonic()
    code, lines, _ = _guarded(command, work, machine / "experiments" / f"{job.name}.log")
    end = time.monotonic()
    if code != 0:  # deterministic (a bad value, diverged training): reported, not retried elsewhere
        tail = " | ".join(line.strip() for _, line in lines[-3:])
        seconds["run"] = end - start
        return Outcome(job.name, "failed", label, seconds, started=started,
                       error=f"`dvc exp run` failed on {label} (exit {code}): {tail}")
    first = next((t for t, line in lines if FIRST_STAGE.search(line)), end)
    seconds["pull"], seconds["run"] = first - start, end - first
    text = "".join(line for _, line in lines)
    ref = exp_ref(job.base, job.name)
    commit = run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], work).stdout.strip()
    start = time.monotonic()
    run([*_helper("publish"), job.name, "--git-remote", job.git_remote], work, timeout=None)  # uploads: no limit
    seconds["push"] = time.monotonic() - start
    pushed = remote_experiments(job.git_url, job.base, guarded=True).get(job.name)
    if pushed != commit:
        raise ClusterError(f"{job.name}: pushed, but {ref} on {strip_password(job.git_url)} is "
                           f"{pushed[:9] if pushed else 'missing'}, not this run's commit {commit[:9]}")
    shutil.rmtree(work)
    return Outcome(job.name, "done", label, seconds, RAN.findall(text), CACHED.findall(text), started)


# ------------------------------------------------------------------------------------------------------ the study


SCHEDULER_TIMEOUT = 30  # seconds to wait for a --scheduler to answer


@contextlib.contextmanager
def _client(scheduler: str | None, local: int | None, slurm: int | None):
    """A Dask client: of the scheduler at `scheduler`, of a LocalCluster of `local` single-thread workers, or of a
    dask-jobqueue SLURMCluster of `slurm` one-core jobs (its options from Dask's config: jobqueue.slurm.*). A cluster
    made here is closed on exit (closing a client does not close a cluster it did not create)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("Dask is not installed: pip install -e '.[cluster]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise ClusterError(f"no Dask scheduler answers at {strip_password(scheduler)} "
                               f"({(str(error).splitlines() or [type(error).__name__])[0]}): start one there "
                               "(`dask scheduler`) or check the address") from None
        with client:
            yield client
        return
    if slurm:
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise ClusterError("dask-jobqueue is not installed (--slurm needs it): pip install -e '.[cluster]'") \
                from None
        try:
            cluster = SLURMCluster(cores=1, processes=1)  # one experiment at a time per job; job-cpu: its CPUs
        except ValueError as error:
            raise ClusterError(f"dask-jobqueue: {str(error).splitlines()[0]} (set jobqueue.slurm.memory and "
                               "job-cpu in ~/.config/dask/jobqueue.yaml: docs/cluster.md)") from None
        with cluster:
            cluster.scale(jobs=slurm)
            with Client(cluster) as client:
                yield client
        return
    with LocalCluster(n_workers=local or 1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield client


def run_study(study: Study, repo: str | Path = ".", git_remote: str = "origin", scheduler: str | None = None,
              local: int | None = None, slurm: int | None = None,
              report: Callable[[str], None] = print) -> list[Outcome]:
    """Run every unfinished experiment of `study` on the cluster; one line per experiment through `report`."""
    base = resolve_base(repo, study.base)
    check_params(repo, base, study)
    url = git_url(repo, git_remote)
    check_base_on_remote(repo, url, base)
    remote, where = probe_remote(repo)
    check_committed_remote(repo, base, remote, where)
    report(f"DVC remote {remote} ({strip_password(where)}) accepts writes; git remote {strip_password(url)}; "
           f"base {base[:9]}")
    on_remote = remote_experiments(url, base)
    check_finished(repo, url, base, study.experiments, on_remote, git_remote)
    done = set(on_remote)
    todo = [e for e in study.experiments if e.name not in done]
    outcomes = [Outcome(e.name, "skipped") for e in study.experiments if e.name in done]
    report(f"{study.name}: {len(study.experiments)} experiments, {len(outcomes)} already on the remote, "
           f"{len(todo)} to run")
    if not todo:
        return outcomes
    with _client(scheduler, local, slurm) as client:  # one line if Dask is not installed
        from distributed import as_completed

        futures = {client.submit(run_experiment, Job(e.name, base, url, e.overrides, git_remote),
                                 key=f"cllab-{base[:9]}-{e.name}", pure=False): e for e in todo}
        # no retries: a failure of the task itself is deterministic; a worker that dies is another matter, and the
        # scheduler gives its task to another worker (distributed.scheduler.allowed-failures)
        failed = []
        for future in as_completed(futures):
            experiment = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - one line per failed experiment, the study goes on
                failed.append(experiment.name)
                report(f"{experiment.name}: FAILED: {(str(error).strip().splitlines() or [type(error).__name__])[0]}")
                continue
            outcomes.append(outcome)
            if outcome.status == "failed":
                failed.append(outcome.name)
                report(f"{outcome.name}: FAILED: {outcome.error}")
                continue
            report(_outcome_line(outcome))
    if failed:
        raise ClusterError(f"{len(failed)} of {len(todo)} experiments failed ({', '.join(failed)}): run the study "
                           "again to retry them (finished ones are skipped)")
    return outcomes


def _outcome_line(outcome: Outcome) -> str:
    """'<name>: done on <machine> (clone 1.6, …, push 2.1 s); ran 4 stages (…), restored 3 from the run-cache
    (…)'."""
    timings = ", ".join(f"{k} {v:.1f}" for k, v in outcome.seconds.items())
    line = f"{outcome.name}: {outcome.status} on {outcome.machine}" + (f" ({timings} s)" if timings else "")
    if outcome.status == "done":
        line += f"; ran {len(outcome.ran)} stages ({', '.join(outcome.ran) or 'none'})"
        if outcome.cached:
            line += f", restored {len(outcome.cached)} from the run-cache ({', '.join(outcome.cached)})"
    return line


def _metric_column(file: str, key: str) -> str:
    return f"{Path(file).stem}.{key}"


def study_table(study: Study, values: Mapping[str, Mapping[tuple[str, str], float]]) -> list[dict[str, Any]]:
    """One row per configuration (the grid point less the seed key): n seeds and, per metric, mean and the half-width
    of the 95 % t-interval over seeds (cllab.metrics.mean_ci95); `values`: experiment name -> metric -> value."""
    from cllab import metrics

    groups: dict[tuple, list[Experiment]] = {}
    for experiment in study.experiments:
        configuration = tuple((k, v) for k, v in experiment.point if k != study.seed_key)
        groups.setdefault(tuple((k, override_text(v)) for k, v in configuration), []).append(experiment)
    rows = []
    for configuration, members in groups.items():
        row: dict[str, Any] = {"configuration": " ".join(f"{k}={v}" for k, v in configuration) or study.name,
                               "seeds": len(members)}
        for file, key in study.metrics:
            summary = metrics.mean_ci95([values[e.name][(file, key)] for e in members])
            column = _metric_column(file, key)
            row[f"{column}_mean"], row[f"{column}_ci95"] = summary["mean"], summary["ci95"]
        rows.append(row)
    return rows


def study_points(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], study: str, dpi: int,
                 size: tuple[float, float] = (7.0, 3.6)) -> bytes:
    """The study's figure: one panel per metric, one point per configuration (its mean over seeds) with the 95 %
    t-interval as error bars, in the lab's figure style (cllab.plots); `rows` as study_table makes them. Here and
    not in cllab.plots, which every pipeline's plot stage depends on (a change there reruns them all)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from cllab import plots

    with plt.rc_context(plots.STYLE):
        fig, axes = plots._figure(size, ncols=len(columns))
        x = np.arange(len(rows))
        slot = 0.9 * (size[0] / len(columns) - 0.6) * 72 / max(len(rows), 1)
        for ax, column in zip(axes, columns):
            ax.errorbar(x, [r[f"{column}_mean"] for r in rows], yerr=[plots._err(r, column) for r in rows], fmt="o",
                        color=plots.REFERENCE_COLOR, capsize=3)
            ax.set_xticks(x, [plots._wrap(r["configuration"].replace(" ", ", "), plots.TICK_SIZE, slot, at_commas=True)
                              for r in rows])
            ax.set_xlim(-0.5, len(rows) - 0.5)
            ax.set_ylabel(column)
            ax.set_xlabel("configuration (params the study varies)")
            ax.grid(axis="y", alpha=0.3)
        seeds = min(int(r["seeds"]) for r in rows)
        plots._title(fig, f"Study {study}: {', '.join(columns)} per configuration "
                          f"({plots.interval_note(seeds, 'error bars')})")
        return plots._png(fig, dpi)


def metric_value(text: str, key: str, where: str) -> float:
    """The number at dotted `key` of a JSON document (cllab.reproduction.json_numbers, as the lab's reproduction
    check reads metrics); ClusterError (one line naming `where`) for bad JSON, a missing key or a non-number."""
    from cllab.reproduction import json_numbers

    try:
        numbers = json_numbers(text, "metric")
    except ValueError as error:
        raise ClusterError(f"{where} is not valid JSON ({str(error).splitlines()[0]})") from None
    value = numbers.get(f"metric.{key}")
    if value is None:
        shown = ", ".join(k.removeprefix("metric.") for k, v in numbers.items() if v is not None)[:200]
        raise ClusterError(f"{where} has no number at {key!r} (its numbers: {shown or 'none'})")
    return float(value)


def collect_study(study: Study, repo: str | Path = ".", git_remote: str = "origin", out_dir: str | Path | None = None,
                  pull_cache: bool = False, report: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """`dvc exp pull` the study's experiments into `repo`, and write its table (CSV) and figure (PNG) to `out_dir`
    (default studies/<name>/)."""
    from cllab import io

    base = resolve_base(repo, study.base)
    url = git_url(repo, git_remote)
    names = [e.name for e in study.experiments]
    missing = sorted(set(names) - remote_experiments(url, base).keys())
    if missing:
        raise ClusterError(f"{len(missing)} of {len(names)} experiments of {study.name} are not on "
                           f"{strip_password(url)} yet "
                           f"({', '.join(missing[:4])}{', …' if len(missing) > 4 else ''}): run the study first")
    _run(_dvc("exp", "pull", *([] if pull_cache else ["--no-cache"]), git_remote, *names), repo,
         timeout=None)  # --pull-cache may download every output: no time limit
    values: dict[str, dict[tuple[str, str], float]] = {}
    for name in names:
        values[name] = {}
        for file, key in study.metrics:
            shown = _run(["git", "show", f"{exp_ref(base, name)}:{file}"], repo, check=False)
            if shown.returncode != 0:
                raise ClusterError(f"{study.path}: metrics file {file} is not in experiment {name}")
            values[name][(file, key)] = metric_value(shown.stdout, key, f"{study.path}: {file} of experiment {name}")
    rows = study_table(study, values)
    out = Path(out_dir) if out_dir else Path(repo) / "studies" / study.name
    columns = ["configuration", "seeds"] + [f"{_metric_column(f, k)}_{s}" for f, k in study.metrics
                                            for s in ("mean", "ci95")]
    io.save_csv(out / "table.csv", rows, columns)
    written = [out / "table.csv"]
    if study.metrics:
        io.write_bytes(out / "figure.png", study_points(rows, [_metric_column(f, k) for f, k in study.metrics],
                                                        study.name, dpi=100))
        written.append(out / "figure.png")
    report(f"{study.name}: {len(names)} experiments pulled; {', '.join(map(str, written))}")
    return rows


# ------------------------------------------------------------------------------------------------------------- CLI


def _study_commands(args: argparse.Namespace) -> Iterator[str]:
    study = load_study(args.study)
    if args.command == "list":
        for experiment in study.experiments:
            yield f"{experiment.name}: " + " ".join(f"-S {o}" for o in experiment.overrides)
    elif args.command == "run":
        run_study(study, args.repo, args.git_remote, args.scheduler, args.local, args.slurm)
    else:
        collect_study(study, args.repo, args.git_remote, args.out_dir, args.pull_cache)


def positive(value: str) -> int:
    """argparse type for --local and --slurm: an integer >= 1."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of workers, got {value!r}")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cllab.cluster", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("list", "the study's experiments and their overrides"),
                       ("run", "run every unfinished experiment of the study on a Dask cluster"),
                       ("collect", "dvc exp pull the study's experiments; write its table and figure")):
        command = commands.add_parser(name, help=text)
        command.add_argument("study", help="the study file, e.g. studies/tiny.yaml")
        command.add_argument("--repo", default=".", help="the project's git repository (default: .)")
        command.add_argument("--git-remote", default="origin", help="the git remote workers clone from and push to")
        if name == "run":
            where = command.add_mutually_exclusive_group(required=True)
            where.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.1:8786")
            where.add_argument("--local", type=positive, metavar="N", help="a LocalCluster of N single-thread workers")
            where.add_argument("--slurm", type=positive, metavar="N", help="N one-core Slurm jobs (dask-jobqueue)")
        if name == "collect":
            command.add_argument("--out-dir", help="where the table and figure go (default: studies/<name>/)")
            command.add_argument("--pull-cache", action="store_true", help="also pull the experiments' outputs")
    commands.add_parser("probe", help="check that the default DVC remote accepts writes (one line)")
    publish_command = commands.add_parser("publish", help="push an experiment of this repository: its outputs, the "
                                          "run-cache and its objects, then its ref")
    publish_command.add_argument("name")
    publish_command.add_argument("--git-remote", default="origin")
    guard_command = commands.add_parser("guard", help="(internal) run a command, killed with its parent")
    guard_command.add_argument("parent", type=int)
    guard_command.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "guard":
            return guard(args.parent, args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
        if args.command == "probe":
            remote, where = probe_remote(".")
            print(f"the DVC remote {remote} ({strip_password(where)}) accepts writes")
        elif args.command == "publish":
            print(publish(args.name, args.git_remote))
        else:
            for line in _study_commands(args):
                print(line)
    except LabError as error:  # the lab's convention (cllab.cli.run): one line, exit status 1
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
