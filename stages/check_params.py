"""Stage check_params, the first stage of each pipeline: validate params.yaml before any other stage runs.

DVC deletes a stage's outputs before it runs the stage's command, so a bad value that the stage itself rejects would
already have cost the workspace that stage's committed results. So this stage checks the whole of params.yaml and the
paper configuration's overrides for every pipeline (`python -m cllab check`: one file, one check, whichever pipeline
runs) and tracks both files whole, so what it tracks is what it checks; and every other stage of its pipeline depends
on the one file it writes (`--out`, e.g. params.ok): DVC must run it first, by the graph and not by luck of ordering,
and stops at its one-line error before any other stage starts (`dvc repro`, `dvc repro <stage>`, `dvc exp run`). The
file is committed to git and declared `persist` (DVC keeps it while the stage runs) and `cache: false`; it is written
only after every value passed, and its bytes never change, so a valid edit reruns this stage (under a second, no
TensorFlow) and then exactly the stages that read the edited key, and an invalid one leaves every file as it was."""

import argparse
from pathlib import Path

from cllab import cli

MARKER = (
    "# Written by stages/check_params.py after params.yaml and sequence/paper/params.yaml passed every check. Every\n"
    "# other stage of the pipeline depends on this file, so DVC runs check_params first; its bytes never change.\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True,
                        help="the file every other stage depends on, written when every value is valid")
    args = parser.parse_args()
    from cllab.__main__ import check

    passed = check()
    from cllab import io

    io.write_bytes(args.out, MARKER.encode())
    print("\n".join(passed))


if __name__ == "__main__":
    cli.run(main)
