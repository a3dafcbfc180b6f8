#!/usr/bin/env bash
# CI's end-to-end check of the permuted-MNIST pipeline on its small configuration (sequence/ci.yaml: 3 tasks, a
# narrow net, one seed, every method), with the same two checks as scripts/check_reproduction.sh:
#  1. Agrees with the committed results (sequence/ci/): byte for byte (every dvc.lock entry and the metrics files)
#     where this machine matches provenance.json, else every number of metrics/full.json within the tolerances of
#     cllab/reproduction.py (one seed: per-seed tolerances).
#  2. Deterministic here: every stage rerun (forced) gives byte-identical outputs.
# It runs in a temporary copy of the project (git's files plus data/raw), so the working tree is not touched.
#   bash scripts/check_sequence.sh            # check
#   bash scripts/check_sequence.sh --record   # write sequence/ci/ from a run here (then commit it)
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1
record=0
for a in "$@"; do
  case "$a" in
    --record) record=1 ;;
    *) echo "check_sequence: unknown option $a (expected --record)" >&2; exit 2 ;;
  esac
done
[ -d data/raw ] || { echo "check_sequence: data/raw/ (the four MNIST files) is missing" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
work="$tmp/project"
mkdir -p "$work/data"
git ls-files -z | while IFS= read -r -d '' f; do
  case "$f" in sequence/runs/*|sequence/metrics/*|sequence/plots/*|sequence/report.md|sequence/dvc.lock|sequence/ci/*) continue ;; esac
  mkdir -p "$work/$(dirname "$f")" && cp -p "$f" "$work/$f"
done
cp -r data/raw "$work/data/raw"   # a copy, not a link: it is the mnist stage's output (DVC tracks it)
[ -d data/tfds ] && cp -r data/tfds "$work/data/tfds"
python scripts/reproduce.py override "$work/params.yaml" sequence/ci.yaml
python scripts/reproduce.py provenance --out "$tmp/here.json" >/dev/null

start=$(date +%s)
(cd "$work" && git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm small \
  && dvc repro sequence/dvc.yaml) > "$tmp/repro.log" 2>&1 || { tail -40 "$tmp/repro.log" >&2; exit 1; }
echo "dvc repro sequence/dvc.yaml (small configuration) took $(( $(date +%s) - start )) s"
grep -E "average after|joint:" "$tmp/repro.log" | tail -12 || true

if [ "$record" = 1 ]; then
  rm -rf sequence/ci && mkdir -p sequence/ci
  cp "$work/sequence/dvc.lock" sequence/ci/dvc.lock
  cp -r "$work/sequence/metrics" sequence/ci/metrics
  cp "$tmp/here.json" sequence/ci/provenance.json
  echo "recorded sequence/ci/: commit it"
  exit 0
fi

status=0
python scripts/reproduce.py compare-sequence --here "$tmp/here.json" --dir "$work/sequence" || status=1

cp "$work/sequence/dvc.lock" "$tmp/dvc.lock"
start=$(date +%s)
(cd "$work" && dvc repro --force sequence/dvc.yaml) > "$tmp/rerun.log" 2>&1 || { tail -40 "$tmp/rerun.log" >&2; exit 1; }
if cmp -s "$work/sequence/dvc.lock" "$tmp/dvc.lock"; then
  echo "DETERMINISTIC: every stage of the small sequence rerun, outputs byte-identical ($(( $(date +%s) - start )) s)"
else
  echo "NOT DETERMINISTIC: rerunning the small sequence changed outputs:" >&2
  diff "$tmp/dvc.lock" "$work/sequence/dvc.lock" | grep -E '^[<>] +(- path|  md5|path):' | head -40 >&2 || true
  status=1
fi
exit "$status"
