"""scripts/check_wheels.py without the network: which TF each platform gets, the claimed matrix, pip's arguments."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _load_check_wheels():
    spec = importlib.util.spec_from_file_location("check_wheels", ROOT / "scripts" / "check_wheels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


cw = _load_check_wheels()
TARGETS = {t.name: t for t in cw.TARGETS}
# What each platform must get from pyproject.toml: the TF distribution, and whether `.[gpu]` adds the CUDA build.
EXPECTED_TF = {
    "linux-x86_64": ("tensorflow-cpu", True),
    "linux-aarch64": ("tensorflow", False),
    "macos-arm64": ("tensorflow", False),
    "windows-amd64": ("tensorflow-cpu", False),
}
TF_NAMES = {"tensorflow", "tensorflow-cpu"}


def _base_only(project: dict) -> dict:
    return {**project, "optional-dependencies": {}}


def _names(requirements: list[str]) -> list[str]:
    return [Requirement(r).name for r in requirements]


@pytest.fixture(scope="module")
def project() -> dict:
    return cw.load_project()


def test_every_claimed_platform_is_tested() -> None:
    assert set(TARGETS) == set(EXPECTED_TF)


@pytest.mark.parametrize("python", cw.PYTHONS)
@pytest.mark.parametrize("target", sorted(EXPECTED_TF))
def test_each_platform_gets_one_tf_as_intended(project: dict, target: str, python: str) -> None:
    env = cw.marker_environment(TARGETS[target], python)
    base = cw.requirements_for(_base_only(project), env)
    tf, gpu = EXPECTED_TF[target]
    assert [r for r in base if Requirement(r).name in TF_NAMES] == [f"{tf}==2.21.0"]
    extras = cw.requirements_for(project, env)[len(base):]
    assert ("tensorflow[and-cuda]==2.21.0" in extras) is gpu
    assert "pytest==9.0.3" in extras


def test_every_other_pin_is_the_same_everywhere(project: dict) -> None:
    """Only the TF distribution differs between platforms; every other pin applies on all of them."""
    everything = [Requirement(line) for line in project["dependencies"]]
    unconditional = [str(r) for r in everything if r.marker is None]
    for target in TARGETS.values():
        for python in cw.PYTHONS:
            base = cw.requirements_for(_base_only(project), cw.marker_environment(target, python))
            assert [r for r in base if Requirement(r).name not in TF_NAMES] == unconditional
    assert len(unconditional) == len(everything) - 2


def test_claimed_pythons_match_requires_python(project: dict) -> None:
    assert cw.python_versions_allowed(project["requires-python"]) == cw.PYTHONS == ("3.11", "3.12", "3.13")


def test_python_versions_allowed() -> None:
    assert cw.python_versions_allowed(">=3.11,<3.12") == ("3.11",)
    assert cw.python_versions_allowed(">=3.10") == tuple(f"3.{m}" for m in range(10, 20))


@pytest.mark.parametrize("target", sorted(EXPECTED_TF))
def test_marker_environment_is_complete(target: str) -> None:
    env = cw.marker_environment(TARGETS[target], "3.12")
    assert set(env) == set(default_environment())
    assert env["python_version"] == "3.12" and env["python_full_version"] == "3.12.0"


def test_marker_environment_names_the_platform() -> None:
    assert cw.marker_environment(TARGETS["windows-amd64"], "3.11")["sys_platform"] == "win32"
    assert cw.marker_environment(TARGETS["macos-arm64"], "3.11")["platform_machine"] == "arm64"
    assert cw.marker_environment(TARGETS["linux-aarch64"], "3.11")["platform_system"] == "Linux"


def test_manylinux_tags_cover_old_and_new_names() -> None:
    tags = cw.manylinux_tags("x86_64", glibc_minor=28)
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_27_x86_64" in tags  # TF 2.21's wheels
    assert {"manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags
    assert "manylinux2014_aarch64" in cw.manylinux_tags("aarch64")


def test_pip_args_pin_the_target(tmp_path: Path) -> None:
    target = TARGETS["macos-arm64"]
    args = cw.pip_args(target, "3.13", ["keras==3.15.1"], tmp_path / "wh", tmp_path, Version("26.3"))
    assert args[:2] == ["install", "--dry-run"] and args[-1] == "keras==3.15.1"
    for flag, value in (("--platform", "macosx_12_0_arm64"), ("--python-version", "3.13"), ("--index-url", cw.PYPI)):
        assert args[args.index(flag) + 1] == value
    assert "--only-binary=:all:" in args and "--use-feature=fast-deps" in args
    old = cw.pip_args(target, "3.13", [], tmp_path / "wh", tmp_path, Version("23.2.1"))
    assert "--use-feature=fast-deps" not in old


def test_pip_environment_reads_pypi_only() -> None:
    env = cw.pip_environment({"PATH": "/bin", "PIP_FIND_LINKS": "/opt/wheels", "PIP_EXTRA_INDEX_URL": "x",
                              "PIP_CERT": "/etc/ca.crt"})
    assert env["PIP_CONFIG_FILE"] == cw.os.devnull
    assert "PIP_FIND_LINKS" not in env and "PIP_EXTRA_INDEX_URL" not in env
    assert env["PATH"] == "/bin" and env["PIP_CERT"] == "/etc/ca.crt"


def test_failure_reason_names_the_missing_package() -> None:
    stderr = ("WARNING: Location 'file:///x' is ignored\n"
              "ERROR: Could not find a version that satisfies the requirement promise (from tensorflow-datasets) "
              "(from versions: none)\nERROR: No matching distribution found for promise\n")
    assert cw.failure_reason(stderr).startswith("Could not find a version that satisfies the requirement promise")
    assert cw.failure_reason("") == "pip failed without a message"


def _report(*files: str) -> dict:
    return {"install": [{"metadata": {"name": f.split("-")[0]}, "download_info": {"url": f"https://h/p/{f}"}}
                        for f in files]}


def test_verdict() -> None:
    good = _report("keras-3.15.1-py3-none-any.whl", "numpy-2.4.6-cp311-cp311-win_amd64.whl")
    assert cw.verdict(good, ["keras==3.15.1", "numpy==2.4.6"]) == (True, "2 packages, all wheels")
    ok, reason = cw.verdict(_report("keras-3.15.1.tar.gz"), ["keras==3.15.1", "numpy==2.4.6"])
    assert not ok and "keras-3.15.1.tar.gz" in reason and "numpy==2.4.6" in reason


def test_format_result_is_one_line() -> None:
    line = cw.format_result(cw.Result("windows-amd64", "3.12", False, "Could not find x", 3.2))
    assert "\n" not in line and "FAIL" in line and "windows-amd64" in line and "3.12" in line
