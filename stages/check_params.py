"""Stage check_params, the first stage of each pipeline: validate the params before any other stage runs.

DVC deletes a stage's outputs before it runs the stage's command, so a bad value that the stage itself rejects would
already have cost the workspace that stage's committed results (and a bad seed would meet argparse, not the schema).
This stage writes nothing and depends on every params key its pipeline's stages read, so it reruns (in well under a
second, without TensorFlow) whenever one of them changes; `dvc repro` and `dvc exp run` run it first, as the first stage of its dvc.yaml
(with no dependencies, DVC takes independent stages in file order; tests/test_pipeline.py checks it), and stop at its
one-line error with every other output in place."""

import argparse
from pathlib import Path

from cllab import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
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
    print("params.yaml" + (f" with {args.overrides}" if args.overrides else "") + ": every value valid")


if __name__ == "__main__":
    cli.run(main)
