"""The reproduction check's two halves and its measuring tool (scripts/check_reproduction.sh runs them):

  python scripts/reproduce.py provenance [--out provenance.json]  # this machine's facts (what decides the bytes)
  python scripts/reproduce.py compare [--rev HEAD] [--with-sweep] [--pipeline P ...]  # results here vs committed
  python scripts/reproduce.py outputs [--rev HEAD] [--with-sweep] [--pipeline P ...]  # the committed outputs compared
  python scripts/reproduce.py spread DIR DIR [DIR ...]             # largest differences between result sets
  python scripts/reproduce.py override PARAMS OVERRIDES              # apply nested overrides to a params file (a copy)
  python scripts/reproduce.py compare-small --pipeline sequence --dir DIR [--here P]  # a small run vs sequence/ci/

`compare` compares every result file a pipeline commits to git: the outputs, metrics and plots with `cache: false` of
the stages of ./dvc.yaml (or of each `--pipeline`, e.g. sequence/dvc.yaml; `--with-sweep` adds sweep/dvc.yaml), as
DVC resolves them at --rev, directories expanded to their files, plus the pipeline's dvc.lock. No list of files is
kept here: an output added to a dvc.yaml is compared from then on. Where this machine matches the committed
provenance.json, every such file must be byte-identical to --rev (a table names the numbers that differ). Elsewhere
every number of every JSON, CSV, TSV and YAML result file (JSON leaves, list items included; CSV/TSV cells by row and
column) must agree within cllab.reproduction.TOLERANCES of its kind (per precision; kinds:
cllab.reproduction.kind_in) and every text value exactly; the files whose bytes differ are listed, images, Markdown
and lock files only listed (their bytes follow the numbers' last bits). Both modes fail on a file committed but
missing here or here but not committed, naming it; it exits 1 with a table naming the file and key of each number
that moved. One provenance.json (the project's) stands for every pipeline's results.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cllab import params as params_lib  # noqa: E402
from cllab import provenance, reproduction  # noqa: E402

PROVENANCE = "provenance.json"
PIPELINE = "dvc.yaml"             # the default pipeline (`dvc repro`)
SWEEP_PIPELINE = "sweep/dvc.yaml"  # the λ sweep, on demand (--with-sweep)


def pipeline_outputs(rev: str, pipelines: list[str], root: Path = ROOT) -> list[str]:
    """The outputs committed to git (`cache: false` outs, metrics and plots) of every stage of `pipelines` as DVC
    resolves them at `rev` (templating, matrices, wdir), as paths in the project, and each pipeline's lock file."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    paths: list[str] = []
    for pipeline in pipelines:
        if posixpath.basename(pipeline) != "dvc.yaml":
            raise SystemExit(f"reproduce: {pipeline} is not a pipeline file (expected a path ending in dvc.yaml)")
    try:
        with Repo(str(root), rev=rev) as repo:
            for pipeline in pipelines:
                stages = repo.stage.collect(repo.fs.join(repo.root_dir, pipeline))
                paths += [posixpath.relpath(out.fs_path, repo.root_dir)
                          for stage in stages for out in stage.outs if not out.use_cache]
                paths.append(posixpath.join(posixpath.dirname(pipeline), "dvc.lock"))
    except DvcException as err:
        raise SystemExit(f"reproduce: the pipelines {', '.join(pipelines)} at {rev}: {err}") from None
    return list(dict.fromkeys(paths))


def git(*args: str, root: Path = ROOT) -> str:
    """Run git in `root` (paths taken literally, never as patterns) and return its output."""
    done = subprocess.run(["git", "--literal-pathspecs", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"reproduce: git {' '.join(args[:3])} ...: {done.stderr.strip()}")
    return done.stdout


def committed_files(rev: str, outputs: list[str], root: Path = ROOT) -> list[str]:
    """The files of `outputs` (files or directories) committed at `rev`."""
    return git("ls-tree", "-r", "-z", "--name-only", rev, "--", *outputs, root=root).split("\0")[:-1] if outputs else []


def files_here(outputs: list[str], root: Path = ROOT) -> list[str]:
    """The files of `outputs` in the work tree: tracked or new, not ignored by git."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *outputs, root=root)
    return [f for f in dict.fromkeys(listed.split("\0")[:-1]) if (root / f).is_file()] if outputs else []


class GitBlobs:
    """Files as committed at a revision, read through one `git cat-file --batch` process."""

    def __init__(self, rev: str, root: Path = ROOT):
        self.rev = rev
        self.proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=root, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)

    def read(self, path: str) -> bytes | None:
        """The file's bytes at the revision, None if it has no such file."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{self.rev}:{path}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) != 3:  # "<rev>:<path> missing": no body follows
            return None
        data = self.proc.stdout.read(int(header[2]))  # a tree's body too, so the stream stays in step
        self.proc.stdout.read(1)  # the newline after the contents
        return data if header[1] == b"blob" else None

    def __enter__(self) -> GitBlobs:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait()


def reader_in(directory: Path) -> reproduction.Reader:
    """Read result files under `directory` (None where there is no such file)."""
    def read(path: str) -> bytes | None:
        target = directory / path
        return target.read_bytes() if target.is_file() else None
    return read


def pipelines_of(args: argparse.Namespace) -> list[str]:
    """The pipelines named on the command line: --pipeline (default ./dvc.yaml), and the sweep with --with-sweep."""
    chosen = list(args.pipeline or [PIPELINE])
    return chosen + ([SWEEP_PIPELINE] if args.with_sweep and SWEEP_PIPELINE not in chosen else [])


def git_show(rev: str, path: str) -> str:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"reproduce: {path} is not committed at {rev} ({done.stderr.strip()})")
    return done.stdout


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
    pipelines = pipelines_of(args)
    outputs = pipeline_outputs(args.rev, pipelines)
    files = sorted(set(committed_files(args.rev, outputs)) | set(files_here(outputs)))
    with GitBlobs(args.rev) as blobs:
        result = reproduction.compare_trees(blobs.read, reader_in(ROOT), files, recorded["runtime"]["precision"])
    apart = provenance.differences(recorded, here)
    scope = f"every committed output of {', '.join(pipelines)} and {'its' if len(pipelines) == 1 else 'their'} dvc.lock"
    if not apart:
        print(f"this machine matches {PROVENANCE}: results must be byte-identical ({scope})")
    else:
        print(f"this machine differs from {PROVENANCE} in:")
        for key, was, now in apart:
            print(f"  {key}: {was!r} -> {now!r}")
        print(f"so every number of {scope} must agree within its tolerance")
    ok, out, err = reproduction.verdict(result, byte_mode=not apart, rev=args.rev)
    for line in out:
        print(line)
    for line in err:
        print(line, file=sys.stderr)
    return 0 if ok else 1


def cmd_outputs(args: argparse.Namespace) -> int:
    """Print the committed outputs (as dvc.yaml declares them, directories unexpanded) and lock files compared."""
    print("\n".join(pipeline_outputs(args.rev, pipelines_of(args))))
    return 0


def cmd_spread(args: argparse.Namespace) -> int:
    """The largest differences per kind of number between result sets (directories holding the outputs of ./dvc.yaml
    at --rev, e.g. copies of the project after dvc repro on different hosts), the first against each other."""
    outputs = pipeline_outputs(args.rev, [PIPELINE])
    files = committed_files(args.rev, outputs)
    first, *others = args.dirs
    total: dict[str, float] = {}
    for other in others:
        result = reproduction.compare_trees(reader_in(Path(first)), reader_in(Path(other)), files, "float64")
        spread = reproduction.spread_by_kind(result.diffs)
        absent = len(result.missing_here) + len(result.not_committed)
        print(f"{first} vs {other}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(spread.items()))
              + (f" ({absent} result files on one side only, not compared)" if absent else ""))
        for k, v in spread.items():
            total[k] = max(total.get(k, 0.0), v)
    print("largest: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(total.items())))
    return 0


SMALL = ("sequence", "scenarios")  # the on-demand pipelines whose small configuration CI runs: <name>/ci.yaml, <name>/ci/


def cmd_override(args: argparse.Namespace) -> int:
    """Write params.yaml with an overrides file applied (nested like params.yaml, merged and checked as
    seqparams.load does for a named configuration, the `scenarios` section too); on a bad file or value, one line
    and the file untouched."""
    import yaml

    from cllab import scenparams, seqparams

    try:
        merged = seqparams.load(args.params, overrides=args.overrides)
        scenparams.load(args.params, overrides=args.overrides)
    except params_lib.ParamsError as err:
        raise SystemExit(f"reproduce: {err}") from None
    args.params.write_text(yaml.safe_dump(merged, sort_keys=False))
    return 0


def lock_outputs_differ(expected: dict, got: dict) -> list[str]:
    """The stages of two dvc.lock `stages` mappings whose outputs differ (paths and hashes), or that only one has. Only
    the outputs: what a stage read (its code's hashes, the whole params.yaml of check_params) may change without moving
    a result, and the outputs are what reproducing means; a change that moves one shows here."""
    def outs(entry: dict | None) -> list | None:
        return None if entry is None else sorted((o["path"], o.get("md5"), o.get("size"), o.get("nfiles"))
                                                 for o in entry.get("outs", []))
    return [stage for stage in sorted(set(expected) | set(got)) if outs(expected.get(stage)) != outs(got.get(stage))]


def cmd_compare_small(args: argparse.Namespace) -> int:
    """A small run of an on-demand pipeline in --dir (a copy's <pipeline>/) against the committed <pipeline>/ci/: byte
    for byte where this machine matches <pipeline>/ci/provenance.json, else every number of metrics/full.json within
    tolerance."""
    name = args.pipeline
    committed = ROOT / name / "ci"
    recorded = json.loads((committed / PROVENANCE).read_text())
    here = here_provenance(args.here)
    import yaml

    pairs = [(path, args.dir / path.relative_to(committed))
             for path in sorted((committed / "metrics").rglob("*")) if path.is_file()]
    differ = [str(b) for a, b in pairs if not b.is_file() or a.read_bytes() != b.read_bytes()]
    expected = yaml.safe_load((committed / "dvc.lock").read_text())["stages"]
    got = yaml.safe_load((args.dir / "dvc.lock").read_text())["stages"]
    differ += [f"dvc.lock stage {stage}" for stage in lock_outputs_differ(expected, got)]
    full = "metrics/full.json"

    def every_number(path: Path) -> dict:  # lists too (R, the averages after each task), entry by entry
        def indexed(node):
            if isinstance(node, list):
                return {str(i): indexed(v) for i, v in enumerate(node)}
            return {k: indexed(v) for k, v in node.items()} if isinstance(node, dict) else node
        return reproduction.json_numbers(json.dumps(indexed(json.loads(path.read_text()))), "per_seed.sequence")

    diffs = reproduction.compare(every_number(committed / full), every_number(args.dir / full),
                                 reproduction.tolerances(recorded["runtime"]["precision"], 1))
    moved = reproduction.moved_table(diffs)
    apart = provenance.differences(recorded, here)
    if not apart:
        if not differ:
            print(f"REPRODUCED ({name}, small): the outputs of every stage (dvc.lock) and every metrics file identical to "
                  f"{name}/ci/")
            return 0
        print(f"NOT REPRODUCED ({name}, small): on a machine that matches {name}/ci/{PROVENANCE}, these differ: "
              f"{', '.join(differ)}", file=sys.stderr)
        print(moved or "(no number beyond its tolerance: the bytes moved, the numbers barely)", file=sys.stderr)
        return 1
    print(f"this machine differs from {name}/ci/{PROVENANCE} in: " + ", ".join(k for k, _, _ in apart))
    if moved:
        print(f"NOT REPRODUCED ({name}, small): {sum(not d.ok for d in diffs)} of {len(diffs)} numbers moved:\n{moved}",
              file=sys.stderr)
        return 1
    print(f"REPRODUCED within tolerance ({name}, small): all {len(diffs)} numbers agree with {name}/ci/ "
          f"({'and the bytes are identical too' if not differ else 'the bytes differ'})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("provenance", help="this machine's provenance as JSON")
    p.add_argument("--out", type=Path, help=f"write it here (e.g. {PROVENANCE}) instead of printing it")
    c = sub.add_parser("compare", help="the results here against a commit's")
    u = sub.add_parser("outputs", help="the committed outputs `compare` compares (as dvc.yaml declares them)")
    for command in (c, u):
        command.add_argument("--rev", default="HEAD")
        command.add_argument("--with-sweep", action="store_true", help=f"also {SWEEP_PIPELINE}'s outputs")
        command.add_argument("--pipeline", action="append", metavar="DVC_YAML",
                             help=f"a pipeline file whose outputs to compare (repeatable; default {PIPELINE})")
    c.add_argument("--here", type=Path, help="this machine's provenance, collected before (else collected now)")
    s = sub.add_parser("spread", help="largest differences between result sets (directories holding the outputs)")
    s.add_argument("dirs", nargs="+")
    s.add_argument("--rev", default="HEAD", help=f"whose {PIPELINE} lists the result files")
    o = sub.add_parser("override", help="apply an overrides file to a params file (used on a temporary copy)")
    o.add_argument("params", type=Path)
    o.add_argument("overrides", type=Path, help="YAML of params.yaml keys, nested like it, e.g. sequence/ci.yaml")
    q = sub.add_parser("compare-small", help="a small run of an on-demand pipeline against the committed <pipeline>/ci/")
    q.add_argument("--pipeline", choices=SMALL, required=True)
    q.add_argument("--dir", type=Path, required=True, help="the run's <pipeline>/ directory")
    q.add_argument("--here", type=Path, help="this machine's provenance, collected before (else collected now)")
    args = parser.parse_args()
    return {"provenance": cmd_provenance, "compare": cmd_compare, "outputs": cmd_outputs, "spread": cmd_spread,
            "override": cmd_override, "compare-small": cmd_compare_small}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
