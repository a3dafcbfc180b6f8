#!/usr/bin/env bash
# CI's end-to-end check of an on-demand pipeline on its small configuration (<pipeline>/ci.yaml): the permuted-MNIST
# sequence (3 tasks, a narrow net, one seed, every method) or the three scenarios (5 tasks of 50 iterations, a narrow
# net, one seed, every method and scenario), with the same two checks as scripts/check_reproduction.sh:
#  1. Agrees with the committed results (<pipeline>/ci/): byte for byte (every stage's outputs in dvc.lock and the
#     metrics files; what a stage read, code or params, may change without moving them) where this machine matches
#     provenance.json, else every number of metrics/full.json within the tolerances of cllab/reproduction.py (one
#     seed: per-seed tolerances).
#  2. Deterministic here: every stage rerun (forced) gives byte-identical outputs.
# It runs in a temporary copy of the project (git's files plus data/raw), so the working tree is not touched.
#   bash scripts/check_small.sh sequence            # check (or: scenarios)
#   bash scripts/check_small.sh sequence --record   # write sequence/ci/ from a run here (then commit it)
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1
record=0
pipeline=""
for a in "$@"; do
  case "$a" in
    --record) record=1 ;;
    sequence|scenarios) pipeline="$a" ;;
    *) echo "check_small: unknown argument $a (expected sequence or scenarios, and --record)" >&2; exit 2 ;;
  esac
done
[ -n "$pipeline" ] || { echo "check_small: which pipeline? (sequence or scenarios)" >&2; exit 2; }
[ -d data/raw ] || { echo "check_small: data/raw/ (the four MNIST files) is missing" >&2; exit 2; }
p="$pipeline"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
work="$tmp/project"
mkdir -p "$work/data"
git ls-files -z | while IFS= read -r -d '' f; do
  case "$f" in "$p"/runs/*|"$p"/variants/*/*|"$p"/metrics/*|"$p"/plots/*|"$p"/report.md|"$p"/dvc.lock|"$p"/ci/*) continue ;; esac
  mkdir -p "$work/$(dirname "$f")" && cp -p "$f" "$work/$f"
done
cp -r data/raw "$work/data/raw"   # a copy, not a link: it is the mnist stage's output (DVC tracks it)
[ -d data/tfds ] && cp -r data/tfds "$work/data/tfds"
python scripts/reproduce.py override "$work/params.yaml" "$p/ci.yaml"
python scripts/reproduce.py provenance --out "$tmp/here.json" >/dev/null

start=$(date +%s)
(cd "$work" && git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm small \
  && dvc repro "$p/dvc.yaml") > "$tmp/repro.log" 2>&1 || { tail -40 "$tmp/repro.log" >&2; exit 1; }
echo "dvc repro $p/dvc.yaml (small configuration) took $(( $(date +%s) - start )) s"
grep -E "average after|joint:|: average " "$tmp/repro.log" | tail -12 || true

if [ "$record" = 1 ]; then
  rm -rf "$p/ci" && mkdir -p "$p/ci"
  cp "$work/$p/dvc.lock" "$p/ci/dvc.lock"
  cp -r "$work/$p/metrics" "$p/ci/metrics"
  cp "$tmp/here.json" "$p/ci/provenance.json"
  echo "recorded $p/ci/: commit it"
  exit 0
fi

status=0
python scripts/reproduce.py compare-small --pipeline "$p" --here "$tmp/here.json" --dir "$work/$p" || status=1

cp "$work/$p/dvc.lock" "$tmp/dvc.lock"
start=$(date +%s)
(cd "$work" && dvc repro --force "$p/dvc.yaml") > "$tmp/rerun.log" 2>&1 || { tail -40 "$tmp/rerun.log" >&2; exit 1; }
if cmp -s "$work/$p/dvc.lock" "$tmp/dvc.lock"; then
  echo "DETERMINISTIC: every stage of the small $p pipeline rerun, outputs byte-identical ($(( $(date +%s) - start )) s)"
else
  echo "NOT DETERMINISTIC: rerunning the small $p pipeline changed outputs:" >&2
  diff "$tmp/dvc.lock" "$work/$p/dvc.lock" | grep -E '^[<>] +(- path|  md5|path):' | head -40 >&2 || true
  status=1
fi
exit "$status"
