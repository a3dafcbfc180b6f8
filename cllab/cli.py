"""What every stage entry point shares: arguments, validated params, determinism, one-line errors."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Any, Callable, Iterator

from cllab import params as params_lib
from cllab.errors import LabError


def load_params(path: str = "params.yaml") -> dict[str, Any]:
    """Validated params (raises ParamsError before anything heavy is imported)."""
    return params_lib.load(path)


# What TensorFlow's C++ libraries print on every import, whatever TF_CPP_MIN_LOG_LEVEL says (TF 2.21 logs them through
# absl before absl's log is initialised): the absl notice, oneDNN's "custom operations are on", the CPU-feature note.
IMPORT_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard)\.cc:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$"
)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = IMPORT_NOISE) -> Iterator[None]:
    """Capture file descriptor 2 (C++ libraries write there directly) for the block, then pass on every line that
    does not match `noise`: a real warning or error still reaches the terminal, after the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not noise.match(line.rstrip("\n"))]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def start(params: dict[str, Any], seed: int) -> None:
    """Import TensorFlow without its start-up noise, then seed everything, enable op determinism, pin the thread count
    and precision."""
    # TF's C++ log: level 3 hides its INFO, WARNING and ERROR lines (float64 grappler notes, a tf.data op-version
    # notice per fit); failures still raise Python exceptions with their message, and Python warnings still show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with filtered_stderr():
        import tensorflow  # noqa: F401  (its import is what prints the noise)
    from cllab.runtime import set_determinism

    set_determinism(seed, params["runtime"]["threads"], params["runtime"]["precision"])


class _NoRetracingNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def drop_retracing_note() -> None:
    """A task sequence makes the Fisher's tf.function once per task (per call of the importance function), and TF
    notes each retrace: expected there, so the note is dropped."""
    logging.getLogger("tensorflow").addFilter(_NoRetracingNote())


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
