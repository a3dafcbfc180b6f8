#!/usr/bin/env bash
# Prove that the committed results reproduce, on this machine whatever its CPU. Two checks, both must pass:
#  1. Agrees with the committed results: run the pipeline, then compare with git (scripts/reproduce.py compare) every
#     result file the pipeline commits, as dvc.yaml lists them (every `cache: false` output, metric and plot: metrics/,
#     plots/, report.md; sweep/dvc.yaml's too with --with-sweep) and dvc.lock (which holds the cached outputs' hashes:
#     models, DVCLive logs, per-seed curves): byte for byte where this machine matches the committed provenance.json,
#     else every number of every JSON/CSV/TSV result within the tolerance measured for a change of CPU for its kind
#     (cllab/reproduction.py; images, Markdown and dvc.lock are then only listed when their bytes differ). A result
#     file missing here or not committed fails, naming it; a table names the file and key of each number that moved.
#  2. Deterministic here: rerun every stage of the first seed (plus check_params, mnist, prepare, evaluate, plot: every
#     kind) and require byte-identical outputs (dvc.lock's hashes unchanged). Needs no commit from this machine.
# Run it in a clean clone (it refuses uncommitted changes to the results, dvc.yaml files or params.yaml).
#   bash scripts/check_reproduction.sh                 # dvc repro (from an empty cache this runs every stage)
#   bash scripts/check_reproduction.sh --with-sweep    # also the λ sweep (sweep/dvc.yaml, ~10 min more)
#   bash scripts/check_reproduction.sh --force         # rerun every stage even if DVC thinks it is up to date
#   bash scripts/check_reproduction.sh --record        # make new results here: write provenance.json, dvc repro;
#                                                      # then commit dvc.lock, metrics/, plots/, report.md,
#                                                      # provenance.json
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1

with_sweep=0 record=0
args=()
for a in "$@"; do
  case "$a" in
    --with-sweep) with_sweep=1 ;;
    --record) record=1 ;;
    --force) args+=("$a") ;;
    *) echo "check_reproduction: unknown option $a (expected --with-sweep, --force or --record)" >&2; exit 2 ;;
  esac
done
if [ "$record" = 0 ]; then
  # what compare compares (the committed outputs the dvc.yaml files declare, their lock files) and the provenance
  pipelines=()
  [ "$with_sweep" = 1 ] && pipelines+=(--with-sweep)
  mapfile -t checked < <(python scripts/reproduce.py outputs "${pipelines[@]}")
  [ "${#checked[@]}" -gt 1 ] || { echo "check_reproduction: could not list the pipeline's outputs" >&2; exit 2; }
  checked+=(provenance.json)
  watched=("${checked[@]}" dvc.yaml sweep/dvc.yaml params.yaml)
  if [ -n "$(git status --porcelain --untracked-files=no -- "${watched[@]}")" ]; then
    echo "check_reproduction: the results (the committed outputs, dvc.lock, provenance.json), the dvc.yaml files or" \
      "params.yaml have uncommitted changes; commit or stash them first:" >&2
    git status --short --untracked-files=no -- "${watched[@]}" | head -20 >&2 || true
    exit 2
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python scripts/reproduce.py provenance --out "$tmp/here.json" >/dev/null
[ "$record" = 1 ] && cp "$tmp/here.json" provenance.json   # before repro: the report (plot stage) shows it

start=$(date +%s)
dvc repro "${args[@]}"
echo "dvc repro took $(( $(date +%s) - start )) s"
if [ "$with_sweep" = 1 ]; then
  start=$(date +%s)
  dvc repro "${args[@]}" sweep/dvc.yaml
  echo "dvc repro sweep/dvc.yaml took $(( $(date +%s) - start )) s"
fi
if [ "$record" = 1 ]; then
  echo "recorded: commit dvc.lock, provenance.json and the outputs of dvc.yaml (metrics/, plots/, report.md)"
  exit 0
fi

status=0
# A fresh clone after `dvc repro`: plain `dvc status` (every pipeline in the repo, the on-demand ones included) and
# `dvc checkout` must find nothing missing or changed. Where the results differ in bytes from the committed ones
# (another CPU, tolerance mode below), the on-demand pipelines' inputs differ too, so this applies to byte mode only.
if git diff --quiet -- dvc.lock; then
  if dvc status -q && dvc checkout -q; then
    echo "CLEAN: plain dvc status and dvc checkout report nothing after dvc repro"
  else
    echo "NOT CLEAN: after dvc repro, plain dvc status or dvc checkout reports:" >&2
    dvc status >&2 || true
    status=1
  fi
fi
compare_args=(--here "$tmp/here.json")
[ "$with_sweep" = 1 ] && compare_args+=(--with-sweep)
python scripts/reproduce.py compare "${compare_args[@]}" || status=1

# 2. Deterministic here: every stage of the first seed again, forced; its outputs' hashes must not change.
seed=$(python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['seeds'][0])")
mapfile -t stages < <(dvc stage list --name-only | grep -E "^(check_params|mnist|prepare|evaluate|plot)$|@${seed}(-|$)")
cp dvc.lock "$tmp/dvc.lock"
start=$(date +%s)
dvc repro --force --single-item "${stages[@]}" >"$tmp/rerun.log" 2>&1 || { cat "$tmp/rerun.log" >&2; exit 1; }
if cmp -s dvc.lock "$tmp/dvc.lock"; then
  echo "DETERMINISTIC: ${#stages[@]} stages (seed $seed, every stage kind) rerun, outputs byte-identical ($(( $(date +%s) - start )) s)"
else
  echo "NOT DETERMINISTIC: rerunning seed $seed's stages on this machine changed outputs:" >&2
  diff "$tmp/dvc.lock" dvc.lock | grep -E '^[<>] +(- path|  md5|path):' | head -40 >&2 || true
  status=1
fi
exit "$status"
