"""Prove that `pip install -e '.[test,gpu]'` finds a binary wheel on PyPI for every package, on each claimed platform
and Python version.

For each (platform, Python) in TARGETS x PYTHONS: evaluate pyproject.toml's dependency markers for that target (with
every extra), then let pip resolve the result and all transitive dependencies for that target from PyPI, wheels only,
as a dry run. pip's --platform/--python-version change which wheels fit but not how pip evaluates markers
(sys_platform, platform_machine, ...), so pip runs with its marker environment set to the target's: a dependency
that only Windows needs is then checked for Windows, and a Linux-only one is not. pip's own configuration (extra
indexes, find-links, constraints) is ignored, so only PyPI counts.

A few transitive dependencies are published as sdists only (SDIST_ONLY); pip builds those on any platform. They are
built once here into a local wheelhouse and accepted only if the result is pure Python (py3-none-any).

pip >= 25.3 reads only wheel metadata in a dry run (PEP 658 files, or HTTP range requests); older pip downloads every
resolved wheel, several GB in all. So with an older pip, the check downloads a current pip wheel from PyPI into a
temporary directory and runs pip from it (no environment is changed); --installed-pip keeps the running one.

    python scripts/check_wheels.py                  # every target, a few pip processes in parallel
    python scripts/check_wheels.py --jobs 1 --target linux-x86_64 --python 3.13 --list

Needs network access to PyPI. Exit status 1 if any combination fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.11", "3.12", "3.13")
# Oldest glibc claimed (manylinux_2_28: RHEL 8, Debian 10, Ubuntu 20.04 and newer) and oldest macOS (TF's wheels: 12.0).
GLIBC_MINOR = 28
MACOS = "12_0"
# Transitive dependencies without any wheel on PyPI, as their dependents require them (promise: tensorflow-datasets;
# antlr4-python3-runtime: dvc -> hydra-core -> omegaconf).
SDIST_ONLY = ("promise", "antlr4-python3-runtime==4.9.*")
PYPI = "https://pypi.org/simple"
METADATA_ONLY_PIP = Version("25.3")  # the first pip whose `install --dry-run` stops downloading the resolved wheels
PIP_TIMEOUT_S = 900
# pip settings that would let something other than PyPI answer.
PIP_SOURCE_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CONSTRAINT")


@dataclass(frozen=True)
class Target:
    """A platform as pip's wheel tags and as PEP 508 markers see it."""

    name: str
    tags: tuple[str, ...]
    markers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Result:
    """One combination's verdict."""

    target: str
    python: str
    ok: bool
    reason: str
    seconds: float
    wheels: tuple[str, ...] = ()


def manylinux_tags(arch: str, glibc_minor: int = GLIBC_MINOR) -> tuple[str, ...]:
    """Every manylinux tag a Linux with glibc 2.<glibc_minor> accepts, newest first (pip does not expand these)."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc_minor, 4, -1)]
    legacy = {"x86_64": ("manylinux2014", "manylinux2010", "manylinux1"), "aarch64": ("manylinux2014",)}[arch]
    return (*tags, *(f"{name}_{arch}" for name in legacy))


def _markers(os_name: str, machine: str, system: str, sys_platform: str) -> tuple[tuple[str, str], ...]:
    return (("os_name", os_name), ("platform_machine", machine), ("platform_system", system),
            ("sys_platform", sys_platform))


TARGETS = (
    Target("linux-x86_64", manylinux_tags("x86_64"), _markers("posix", "x86_64", "Linux", "linux")),
    Target("linux-aarch64", manylinux_tags("aarch64"), _markers("posix", "aarch64", "Linux", "linux")),
    Target("macos-arm64", (f"macosx_{MACOS}_arm64",), _markers("posix", "arm64", "Darwin", "darwin")),  # pip expands
    Target("windows-amd64", ("win_amd64",), _markers("nt", "AMD64", "Windows", "win32")),
)


def marker_environment(target: Target, python: str) -> dict[str, str]:
    """The full PEP 508 marker environment of CPython <python> on <target> (release/version strings left empty)."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_version": "",
        "python_full_version": f"{python}.0",
        "python_version": python,
        **dict(target.markers),
    }


def load_project(path: Path = ROOT / "pyproject.toml") -> dict:
    """The [project] table of pyproject.toml."""
    return tomllib.loads(path.read_text())["project"]


def requirements_for(project: dict, env: dict[str, str]) -> list[str]:
    """The project's dependencies and every extra's that apply in <env>, markers dropped, in pyproject order."""
    extras = project.get("optional-dependencies", {})
    wanted: list[str] = []
    for extra, lines in [("", project["dependencies"]), *extras.items()]:
        for line in lines:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({**env, "extra": extra}):
                req.marker = None
                wanted.append(str(req))
    return wanted


def python_versions_allowed(requires_python: str, candidates: range = range(8, 20)) -> tuple[str, ...]:
    """The 3.x versions (x in candidates) that requires-python admits."""
    spec = SpecifierSet(requires_python)
    return tuple(f"3.{minor}" for minor in candidates if spec.contains(f"3.{minor}.0"))


def pip_environment(environ: dict[str, str]) -> dict[str, str]:
    """<environ> for a pip that reads no configuration file and no index/link/constraint setting: PyPI only."""
    env = {k: v for k, v in environ.items() if k not in PIP_SOURCE_VARIABLES}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def pip_args(target: Target, python: str, requirements: list[str], wheelhouse: Path, workdir: Path,
             pip_version: Version) -> list[str]:
    """`pip install --dry-run` arguments: resolve <requirements> for the target from wheels only, report as JSON."""
    platforms = [arg for tag in target.tags for arg in ("--platform", tag)]
    # Range requests for wheel metadata where the index serves no PEP 658 file; pointless where pip downloads anyway.
    lazy = ["--use-feature=fast-deps"] if pip_version >= METADATA_ONLY_PIP else []
    return ["install", "--dry-run", "--quiet", *lazy, "--ignore-installed", "--only-binary=:all:", *platforms,
            "--python-version", python, "--implementation", "cp", "--target", str(workdir / "target"),
            "--index-url", PYPI, "--find-links", str(wheelhouse), "--report", str(workdir / "report.json"),
            *requirements]


# Runs pip with its marker environment replaced by the target's: argv[1] is the JSON environment, argv[2] a pip wheel
# to run pip from (empty: the installed pip), argv[3:] pip's arguments.
PIP_WITH_MARKERS = """
import json, sys
if sys.argv[2]:
    sys.path.insert(0, sys.argv[2])
import pip._vendor.packaging.markers as markers
env = json.loads(sys.argv[1])
markers.default_environment = lambda: dict(env)
assert markers.Marker('sys_platform == "%s"' % env["sys_platform"]).evaluate(), "could not set pip's markers"
from pip._internal.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def failure_reason(stderr: str) -> str:
    """The one line of pip's error output that names the missing package, or its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "WARNING" not in line]
    for pattern in (r"Could not find a version that satisfies the requirement .*", r"ResolutionImpossible.*",
                    r"ERROR: .*", r"\w*Error: .*"):
        for line in lines:
            found = re.search(pattern, line)
            if found:
                return found.group(0)
    return lines[-1] if lines else "pip failed without a message"


def wheel_files(report: dict) -> tuple[str, ...]:
    """The file name of every distribution in a pip --report, sorted."""
    return tuple(sorted(item["download_info"]["url"].rsplit("/", 1)[-1] for item in report.get("install", [])))


def missing_requirements(report: dict, requirements: list[str]) -> list[str]:
    """Requirements (by name) that the resolution does not contain."""
    names = {canonicalize_name(item["metadata"]["name"]) for item in report.get("install", [])}
    return [r for r in requirements if canonicalize_name(Requirement(r).name) not in names]


def verdict(report: dict, requirements: list[str]) -> tuple[bool, str]:
    """OK when every resolved distribution is a wheel and every requirement is among them."""
    files = wheel_files(report)
    not_wheels = [f for f in files if not f.endswith(".whl")]
    missing = missing_requirements(report, requirements)
    if not_wheels or missing:
        return False, f"not wheels: {not_wheels}; missing from the resolution: {missing}"
    return True, f"{len(files)} packages, all wheels"


def check(target: Target, python: str, requirements: list[str], wheelhouse: Path, pip_version: Version,
          pip_wheel: str = "") -> Result:
    """Resolve one combination with pip (the installed one, or the one in <pip_wheel>)."""
    start = time.monotonic()
    env = marker_environment(target, python)
    with tempfile.TemporaryDirectory(prefix="check_wheels_") as tmp:
        args = pip_args(target, python, requirements, wheelhouse, Path(tmp), pip_version)
        try:
            proc = subprocess.run([sys.executable, "-c", PIP_WITH_MARKERS, json.dumps(env), pip_wheel, *args],
                                  check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                                  env=pip_environment(dict(os.environ)))
        except subprocess.TimeoutExpired:
            return Result(target.name, python, False, f"pip took over {PIP_TIMEOUT_S} s", time.monotonic() - start)
        if proc.returncode != 0:
            return Result(target.name, python, False, failure_reason(proc.stderr), time.monotonic() - start)
        report = json.loads((Path(tmp) / "report.json").read_text())
    ok, reason = verdict(report, requirements)
    return Result(target.name, python, ok, reason, time.monotonic() - start, wheel_files(report))


def build_wheelhouse(wheelhouse: Path) -> str | None:
    """Build SDIST_ONLY into <wheelhouse>; an error message if that fails or a result is not pure Python."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--index-url", PYPI,
                           "--wheel-dir", str(wheelhouse), *SDIST_ONLY], check=False, capture_output=True,
                          text=True, timeout=PIP_TIMEOUT_S, env=pip_environment(dict(os.environ)))
    if proc.returncode != 0:
        return f"building {SDIST_ONLY} failed: {failure_reason(proc.stderr)}"
    impure = [p.name for p in wheelhouse.glob("*.whl") if not p.name.endswith("-none-any.whl")]
    return f"not pure Python, so not portable: {impure}" if impure else None


def fetch_current_pip(directory: Path) -> tuple[str, Version] | None:
    """Download a pip wheel >= METADATA_ONLY_PIP into <directory>: its path and version, or None if that fails."""
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                           "--index-url", PYPI, "--dest", str(directory), f"pip>={METADATA_ONLY_PIP}"],
                          check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                          env=pip_environment(dict(os.environ)))
    wheels = sorted(directory.glob("pip-*.whl"))
    if proc.returncode != 0 or not wheels:
        return None
    return str(wheels[-1]), Version(wheels[-1].name.split("-")[1])


def format_result(result: Result) -> str:
    """One line per combination."""
    status = "OK" if result.ok else "FAIL"
    return f"{result.target:<14} python {result.python}  {status:<4} {result.seconds:4.0f} s  {result.reason}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", action="append", choices=[t.name for t in TARGETS],
                        help="check only this platform (repeatable; default: all)")
    parser.add_argument("--python", action="append", choices=PYTHONS, help="check only this Python (repeatable)")
    parser.add_argument("--jobs", type=int, default=4, help="pip processes at once (default: 4)")
    parser.add_argument("--list", action="store_true", help="also print every resolved wheel's file name")
    parser.add_argument("--installed-pip", action="store_true",
                        help=f"use the running pip even if older than {METADATA_ONLY_PIP} (slow: downloads wheels)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    project = load_project()
    allowed = python_versions_allowed(project["requires-python"])
    if allowed != PYTHONS:
        print(f"check_wheels: error: requires-python admits {allowed} but PYTHONS claims {PYTHONS}", file=sys.stderr)
        return 2
    combos = [(t, p) for t in TARGETS if not args.target or t.name in args.target
              for p in PYTHONS if not args.python or p in args.python]
    with tempfile.TemporaryDirectory(prefix="check_wheels_") as tmp:
        wheelhouse = Path(tmp) / "wheelhouse"
        pip_wheel, pip_version = "", Version(installed_version("pip"))
        if pip_version < METADATA_ONLY_PIP and not args.installed_pip:
            fetched = fetch_current_pip(Path(tmp) / "pip")
            if fetched:
                pip_wheel, pip_version = fetched
        if pip_version < METADATA_ONLY_PIP:
            print(f"check_wheels: note: pip {pip_version} downloads every resolved wheel in a dry run (GBs, minutes); "
                  f"pip >= {METADATA_ONLY_PIP} reads only metadata", file=sys.stderr, flush=True)
        print(f"check_wheels: pip {pip_version}" + (f" from {Path(pip_wheel).name}" if pip_wheel else " (installed)"),
              flush=True)
        error = build_wheelhouse(wheelhouse)
        if error:
            print(f"check_wheels: error: {error}", file=sys.stderr)
            return 1
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(check, t, p, requirements_for(project, marker_environment(t, p)), wheelhouse,
                                   pip_version, pip_wheel) for t, p in combos]
            results = []
            for future in futures:
                results.append(future.result())
                print(format_result(results[-1]), flush=True)
                if args.list:
                    print("".join(f"    {name}\n" for name in results[-1].wheels), end="", flush=True)
    failed = [r for r in results if not r.ok]
    summary = f"check_wheels: {len(results) - len(failed)} of {len(results)} OK in {time.monotonic() - start:.0f} s"
    print(summary + (f"; FAILED: {', '.join(f'{r.target}/{r.python}' for r in failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
