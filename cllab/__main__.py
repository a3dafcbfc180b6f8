"""`python -m cllab check`: validate params.yaml for every pipeline at once, without DVC or TensorFlow.

Each pipeline's check_params stage does this before any of its stages runs. One case comes before any stage: DVC
expands `seeds`, `methods`, `sweep.widths`, `sequence.seeds` and `sequence.methods` into stage names when it reads the
dvc.yaml files, so a scalar there fails inside DVC (`ERROR: unexpected error - 'Value' object is not iterable`) with no
key named; this command names it. It prints one line per pipeline configuration checked, or the first bad value.
"""

from __future__ import annotations

import argparse
import sys

from cllab import params as params_lib
from cllab import seqparams

CONFIGURATIONS = {  # what each pipeline file checks: (overrides file or None, whether the `sequence` section is read)
    "dvc.yaml and sweep/dvc.yaml": (None, False),
    "sequence/dvc.yaml": (None, True),
    "sequence/paper/dvc.yaml": ("sequence/paper/params.yaml", True),
}


def check(path: str = "params.yaml") -> list[str]:
    """One line per configuration that passed; ParamsError (one line naming the key) at the first bad value."""
    done = []
    for name, (overrides, sequence) in CONFIGURATIONS.items():
        if sequence:
            seqparams.load(path, overrides=overrides)
        else:
            params_lib.load(path)
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
