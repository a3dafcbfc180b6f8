"""What every stage entry point shares: arguments, validated params, determinism, one-line errors."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from cllab import params as params_lib
from cllab.errors import LabError


def load_params(path: str = "params.yaml") -> dict[str, Any]:
    """Validated params (raises ParamsError before anything heavy is imported)."""
    return params_lib.load(path)


def start(params: dict[str, Any], seed: int) -> None:
    """Import TensorFlow quietly, then seed everything, enable op determinism, pin the thread count and precision."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from cllab.runtime import set_determinism

    set_determinism(seed, params["runtime"]["threads"], params["runtime"]["precision"])


def seed_arg(value: str) -> int:
    """argparse type for --seed: an integer >= 0."""
    if not value.isdigit():
        raise ValueError(value)
    return int(value)


def run(main: Callable[[], None]) -> None:
    """Run a stage's main; a LabError becomes `error: <one line>` on stderr and exit status 1.

    On success the process ends with os._exit(0) once stdout and stderr are flushed: every output is already written
    and renamed into place (cllab.io), and skipping the interpreter's teardown of TensorFlow saves ~2 s per stage
    process (11 processes per seed).
    """
    try:
        main()
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
