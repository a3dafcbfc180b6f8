"""Shared fixtures: the project root, the real MNIST files, and a TFDS copy built from them once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

ROOT = Path(__file__).resolve().parents[1]
MNIST_NAMES = (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
)


def run_script(root: Path, module: str, *flags: str, cwd: Path | None = None):
    """`python -m <module> <flags>` of the project at `root`, run in `cwd` (default: `root`), output captured."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", module, *flags], cwd=cwd or root, env=env, capture_output=True,
                          text=True, timeout=600)


def without_variants(params: dict) -> dict:
    """`params` with every scenario variant's lists emptied, so that no variant runs unless a test says which (a new
    variant in params.yaml needs no test edited)."""
    for variant in params["scenarios"]["variants"].values():
        variant.update(scenarios=[], methods=[])
    return params


def _mnist_dir() -> Path | None:
    """The four original MNIST files: $MNIST_DIR, the project's data/raw/, or ../shared/data/mnist/."""
    candidates = [os.environ.get("MNIST_DIR"), ROOT / "data" / "raw", ROOT.parent / "shared" / "data" / "mnist"]
    for candidate in candidates:
        if candidate and all((Path(candidate) / n).is_file() for n in MNIST_NAMES):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    found = _mnist_dir()
    if found is None:
        pytest.skip("the four MNIST .gz files are not in data/raw/ nor ../shared/data/mnist/")
    return found


@pytest.fixture(scope="session")
def tfds_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TFDS data_dir with mnist prepared from the real files (built once per session, ~25 s)."""
    from cllab import data

    directory = tmp_path_factory.mktemp("tfds")
    data.load_mnist(mnist_dir, directory)
    return directory


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path, tfds_dir: Path):
    from cllab import data

    return data.load_mnist(mnist_dir, tfds_dir)


@pytest.fixture(scope="session")
def tasks(mnist):
    from cllab import data

    return data.split_tasks(mnist, val_fraction=0.1, val_seed=0)


@pytest.fixture(autouse=True)
def _keras_precision_restored():
    """Whatever float type a test sets, the next test finds the one before it (a leaked float64 once moved the epoch
    in which a diverging loss overflows, and so a test's outcome depended on the order tests ran in)."""
    import sys

    keras = sys.modules.get("keras")
    before = (keras.config.floatx(), keras.config.dtype_policy().name) if keras else None
    yield
    if before is not None:
        keras.config.set_floatx(before[0])
        keras.config.set_dtype_policy(before[1])
