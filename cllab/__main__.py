"""`python -m cllab check`: validate params.yaml for every pipeline at once, without DVC or TensorFlow.

Each pipeline's check_params stage runs this check before any of its stages (stages/check_params.py). A few keys come
before any stage: DVC reads them while it builds the graph from the dvc.yaml files, and a bad value there stops DVC
itself with a message that names no key (nothing has run or been deleted): `seeds`, `methods`, `sweep.widths`,
`sequence.seeds` and `sequence.methods` (and the paper configuration's seeds and methods), `scenarios.seeds`,
`scenarios.scenarios` and `scenarios.methods`, expanded into stage names
(a scalar: `ERROR: unexpected error - 'Value' object is not iterable`), and `prepare.raw_dir`, a path in the graph
(a number, null or list). This command names the key. It prints one line per pipeline configuration checked, or the
first bad value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cllab import params as params_lib
from cllab import scenparams, seqparams

PAPER = "sequence/paper/params.yaml"
# What each pipeline file checks: (overrides file or None, which section beside the shared ones is read: the
# `sequence` section (True), none (False) or "scenarios")
CONFIGURATIONS = {
    "dvc.yaml and sweep/dvc.yaml": (None, False),
    "sequence/dvc.yaml": (None, True),
    "sequence/paper/dvc.yaml": (PAPER, True),
    "scenarios/dvc.yaml": (None, "scenarios"),
}
# Keys an overrides file must set itself: its dvc.yaml expands them into stage names (its vars come from that file)
MATRIX_KEYS = ("seeds", "methods")


def check(path: str | Path = "params.yaml", root: str | Path = ".") -> list[str]:
    """One line per configuration that passed; ParamsError (one line naming the key) at the first bad value."""
    done = []
    for name, (overrides, sequence) in CONFIGURATIONS.items():
        if sequence == "scenarios":
            scenparams.load(path)
        elif not sequence:
            params_lib.load(path)
        elif overrides is None:
            seqparams.load(path)
        else:
            overrides = Path(root) / overrides
            section = seqparams.read_overrides(overrides).get("sequence")
            for key in MATRIX_KEYS:
                if not isinstance(section, dict) or key not in section:
                    raise params_lib.ParamsError(f"{overrides}: missing key sequence.{key} (the matrix of its dvc.yaml "
                                                 f"reads it from this file)")
            seqparams.load(path, overrides=overrides)
        done.append(f"{path}" + (f" with {overrides}" if overrides else "") + f": every value valid ({name})")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cllab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="validate params.yaml for every pipeline (milliseconds, no DVC, no TensorFlow)")
    c.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        for line in check(args.params):
            print(line)
    except params_lib.ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
