"""Stage check_params, the first stage of each pipeline: validate the params before any other stage runs.

DVC deletes a stage's outputs before it runs the stage's command, so a bad value that the stage itself rejects would
already have cost the workspace that stage's committed results (and a bad seed would meet argparse, not the schema).
So this stage depends on every params key its pipeline's stages read, and every other stage of the pipeline depends on
the one file it writes (`--out`, e.g. params.ok): DVC must run it first, by the graph and not by luck of ordering, and
stops at its one-line error before any other stage starts (`dvc repro`, `dvc repro <stage>`, `dvc exp run`). The file
is committed to git and declared `persist` (DVC keeps it while the stage runs) and `cache: false`; it is written only
after every value passed, and its bytes never change, so a valid edit reruns this stage (under a second, no
TensorFlow) and then exactly the stages that read the edited key, and an invalid one leaves every file as it was."""

import argparse
from pathlib import Path

from cllab import cli

MARKER = (
    "# Written by stages/check_params.py after every params key of this pipeline passed its check. Every other stage\n"
    "# of the pipeline depends on this file, so DVC runs check_params first; its bytes never change.\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True,
                        help="the file every other stage depends on, written when every value is valid")
    parser.add_argument("--sequence", action="store_true", help="also the `sequence` section (sequence/dvc.yaml)")
    parser.add_argument("--overrides", type=Path, default=None,
                        help="with --sequence: YAML of params.yaml keys to replace, e.g. sequence/paper/params.yaml")
    args = parser.parse_args()
    if args.overrides is not None and not args.sequence:
        raise SystemExit("error: --overrides is for the sequence section: add --sequence")
    if args.sequence:
        from cllab import seqparams

        seqparams.load(overrides=args.overrides)
    else:
        cli.load_params()
    from cllab import io

    io.write_bytes(args.out, MARKER.encode())
    print("params.yaml" + (f" with {args.overrides}" if args.overrides else "") + ": every value valid")


if __name__ == "__main__":
    cli.run(main)
