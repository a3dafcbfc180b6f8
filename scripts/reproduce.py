"""The reproduction check's two halves and its measuring tool (scripts/check_reproduction.sh runs them):

  python scripts/reproduce.py provenance [--out provenance.json]  # this machine's facts (what decides the bytes)
  python scripts/reproduce.py compare [--rev HEAD] [--with-sweep]  # results here vs committed, byte or tolerance
  python scripts/reproduce.py spread DIR DIR [DIR ...]             # largest differences between result sets
  python scripts/reproduce.py override PARAMS OVERRIDES              # apply nested overrides to a params file (a copy)
  python scripts/reproduce.py compare-sequence --dir DIR [--here P]  # a small sequence run vs sequence/ci/

`compare` is byte for byte where this machine matches the committed provenance.json, and within
cllab.reproduction.TOLERANCES (per precision) elsewhere; it exits 1 with a table of the numbers that moved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cllab import params as params_lib  # noqa: E402
from cllab import provenance, reproduction  # noqa: E402

PROVENANCE = "provenance.json"
# result file -> how to read its numbers (JSON leaves, or CSV cells keyed by the listed columns)
RESULTS = {
    "metrics/test.json": ("test", None),
    "metrics/validation.json": ("validation", None),
    "metrics/test_per_seed.csv": ("per_seed.test", ("seed", "method")),
    "metrics/validation_per_seed.csv": ("per_seed.validation", ("seed", "method")),
}
SWEEP_RESULTS = {"sweep/front.csv": ("per_seed.sweep", ("method", "optimizer", "hidden_units", "lambda"))}
BYTE_CHECKED = ["dvc.lock", "metrics"]
SWEEP_BYTE_CHECKED = ["sweep/dvc.lock", "sweep/front.csv"]


def numbers(read: Callable[[str], str], files: dict) -> dict:
    """All numbers of the result files, read through `read(path) -> text`."""
    out = {}
    for path, (prefix, keys) in files.items():
        text = read(path)
        out.update(reproduction.json_numbers(text, prefix) if keys is None else reproduction.csv_numbers(text, prefix, keys))
    return out


def git_show(rev: str, path: str) -> str:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"reproduce: {path} is not committed at {rev} ({done.stderr.strip()})")
    return done.stdout


def read_here(path: str) -> str:
    try:
        return (ROOT / path).read_text()
    except FileNotFoundError:
        raise SystemExit(f"reproduce: {path} is missing here (run dvc repro first)") from None


def here_provenance(path: Path | None) -> dict:
    if path is not None:
        return json.loads(path.read_text())
    return provenance.collect(params_lib.load(str(ROOT / "params.yaml"))["runtime"])


def cmd_provenance(args: argparse.Namespace) -> int:
    record = here_provenance(None)
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    if args.out:
        from cllab import io

        io.write_bytes(args.out, text.encode())
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    recorded = json.loads(git_show(args.rev, PROVENANCE))
    here = here_provenance(args.here)
    files = {**RESULTS, **(SWEEP_RESULTS if args.with_sweep else {})}
    byte_paths = BYTE_CHECKED + (SWEEP_BYTE_CHECKED if args.with_sweep else [])
    identical = subprocess.run(["git", "diff", "--quiet", args.rev, "--", *byte_paths], cwd=ROOT).returncode == 0
    committed = numbers(lambda p: git_show(args.rev, p), files)
    precision = recorded["runtime"]["precision"]
    tolerances = reproduction.tolerances(precision, int(committed.get("test.seeds") or 1))
    diffs = reproduction.compare(committed, numbers(read_here, files), tolerances)
    moved = reproduction.moved_table(diffs)
    apart = provenance.differences(recorded, here)
    if not apart:
        print(f"this machine matches {PROVENANCE}: results must be byte-identical ({', '.join(byte_paths)})")
        if identical:
            print(f"REPRODUCED: {', '.join(byte_paths)} are byte-identical to {args.rev}")
            return 0
        print(f"NOT REPRODUCED: the results differ from {args.rev} on a machine that matches its provenance",
              file=sys.stderr)
        subprocess.run(["git", "--no-pager", "diff", "--stat", args.rev, "--", *byte_paths], cwd=ROOT)
        print(moved or "(no metric beyond its tolerance: the bytes moved, the numbers barely)", file=sys.stderr)
        return 1
    print(f"this machine differs from {PROVENANCE} in:")
    for key, was, now in apart:
        print(f"  {key}: {was!r} -> {now!r}")
    spread = reproduction.spread_by_kind(diffs)
    print(f"largest differences ({precision} results): " + ", ".join(f"{k} {v:.4f} (allowed {tolerances[k]:.4g})"
                                               for k, v in sorted(spread.items())))
    if moved:
        print(f"NOT REPRODUCED: {sum(not d.ok for d in diffs)} of {len(diffs)} numbers moved beyond what a change of "
              f"CPU does:\n{moved}", file=sys.stderr)
        return 1
    print(f"REPRODUCED within tolerance: all {len(diffs)} numbers agree with {args.rev} "
          f"({'and the bytes are identical too' if identical else 'the bytes differ'})")
    return 0


def cmd_spread(args: argparse.Namespace) -> int:
    sets = {d: numbers(lambda p, d=d: (Path(d) / p).read_text(), RESULTS) for d in args.dirs}
    first, *others = args.dirs
    total: dict[str, float] = {}
    for other in others:
        spread = reproduction.spread_by_kind(reproduction.compare(sets[first], sets[other]))
        print(f"{first} vs {other}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(spread.items())))
        for k, v in spread.items():
            total[k] = max(total.get(k, 0.0), v)
    print("largest: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(total.items())))
    return 0


SEQUENCE_EXPECTED = ROOT / "sequence" / "ci"


def cmd_override(args: argparse.Namespace) -> int:
    """Write params.yaml with an overrides file applied (nested like params.yaml, merged and checked as
    seqparams.load does for a named configuration); on a bad file or value, one line and the file untouched."""
    import yaml

    from cllab import seqparams

    try:
        merged = seqparams.load(args.params, overrides=args.overrides)
    except params_lib.ParamsError as err:
        raise SystemExit(f"reproduce: {err}") from None
    args.params.write_text(yaml.safe_dump(merged, sort_keys=False))
    return 0


def cmd_compare_sequence(args: argparse.Namespace) -> int:
    """The small sequence run in --dir (a copy's sequence/) against the committed sequence/ci/: byte for byte where
    this machine matches sequence/ci/provenance.json, else every number of metrics/full.json within tolerance."""
    recorded = json.loads((SEQUENCE_EXPECTED / PROVENANCE).read_text())
    here = here_provenance(args.here)
    import yaml

    pairs = [(path, args.dir / path.relative_to(SEQUENCE_EXPECTED))
             for path in sorted((SEQUENCE_EXPECTED / "metrics").rglob("*")) if path.is_file()]
    differ = [str(b) for a, b in pairs if not b.is_file() or a.read_bytes() != b.read_bytes()]
    # dvc.lock: the same entry for every stage (DVC writes the entries of a new lock in the order the stages ran)
    expected = yaml.safe_load((SEQUENCE_EXPECTED / "dvc.lock").read_text())["stages"]
    got = yaml.safe_load((args.dir / "dvc.lock").read_text())["stages"]
    differ += [f"dvc.lock stage {name}" for name in sorted(set(expected) | set(got)) if expected.get(name) != got.get(name)]
    full = "metrics/full.json"

    def every_number(path: Path) -> dict:  # lists too (R, the averages after each task), entry by entry
        def indexed(node):
            if isinstance(node, list):
                return {str(i): indexed(v) for i, v in enumerate(node)}
            return {k: indexed(v) for k, v in node.items()} if isinstance(node, dict) else node
        return reproduction.json_numbers(json.dumps(indexed(json.loads(path.read_text()))), "per_seed.sequence")

    diffs = reproduction.compare(every_number(SEQUENCE_EXPECTED / full), every_number(args.dir / full),
                                 reproduction.tolerances(recorded["runtime"]["precision"], 1))
    moved = reproduction.moved_table(diffs)
    apart = provenance.differences(recorded, here)
    if not apart:
        if not differ:
            print("REPRODUCED (sequence, small): every dvc.lock entry (output hashes) and metrics file identical to "
                  "sequence/ci/")
            return 0
        print(f"NOT REPRODUCED (sequence, small): on a machine that matches sequence/ci/{PROVENANCE}, these differ: "
              f"{', '.join(differ)}", file=sys.stderr)
        print(moved or "(no number beyond its tolerance: the bytes moved, the numbers barely)", file=sys.stderr)
        return 1
    print(f"this machine differs from sequence/ci/{PROVENANCE} in: " + ", ".join(k for k, _, _ in apart))
    if moved:
        print(f"NOT REPRODUCED (sequence, small): {sum(not d.ok for d in diffs)} of {len(diffs)} numbers moved:\n{moved}",
              file=sys.stderr)
        return 1
    print(f"REPRODUCED within tolerance (sequence, small): all {len(diffs)} numbers agree with sequence/ci/ "
          f"({'and the bytes are identical too' if not differ else 'the bytes differ'})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("provenance", help="this machine's provenance as JSON")
    p.add_argument("--out", type=Path, help=f"write it here (e.g. {PROVENANCE}) instead of printing it")
    c = sub.add_parser("compare", help="the results here against a commit's")
    c.add_argument("--rev", default="HEAD")
    c.add_argument("--with-sweep", action="store_true", help="also the λ sweep's table")
    c.add_argument("--here", type=Path, help="this machine's provenance, collected before (else collected now)")
    s = sub.add_parser("spread", help="largest differences between result sets (directories holding metrics/)")
    s.add_argument("dirs", nargs="+")
    o = sub.add_parser("override", help="apply an overrides file to a params file (used on a temporary copy)")
    o.add_argument("params", type=Path)
    o.add_argument("overrides", type=Path, help="YAML of params.yaml keys, nested like it, e.g. sequence/ci.yaml")
    q = sub.add_parser("compare-sequence", help="a small sequence run against the committed sequence/ci/")
    q.add_argument("--dir", type=Path, required=True, help="the run's sequence/ directory")
    q.add_argument("--here", type=Path, help="this machine's provenance, collected before (else collected now)")
    args = parser.parse_args()
    return {"provenance": cmd_provenance, "compare": cmd_compare, "spread": cmd_spread, "override": cmd_override,
            "compare-sequence": cmd_compare_sequence}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
