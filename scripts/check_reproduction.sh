#!/usr/bin/env bash
# Prove that the committed results reproduce: run the pipeline (and with --with-sweep the λ sweep in sweep/dvc.yaml)
# and fail if the lock files, metrics/ or the sweep's table differ from what git has. Run it in a clean clone (it
# refuses a tree with uncommitted changes to those files).
#   bash scripts/check_reproduction.sh                 # dvc repro (from an empty cache this runs every stage)
#   bash scripts/check_reproduction.sh --with-sweep    # also the λ sweep (sweep/dvc.yaml, ~18 min more)
#   bash scripts/check_reproduction.sh --force         # rerun every stage even if DVC thinks it is up to date
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1

with_sweep=0
args=()
for a in "$@"; do
  if [ "$a" = "--with-sweep" ]; then with_sweep=1; else args+=("$a"); fi
done
checked=(dvc.lock metrics)
[ "$with_sweep" = 1 ] && checked+=(sweep/dvc.lock sweep/front.csv)
if [ -n "$(git status --porcelain --untracked-files=no -- "${checked[@]}" dvc.yaml sweep/dvc.yaml params.yaml)" ]; then
  echo "check_reproduction: ${checked[*]}, the dvc.yaml files or params.yaml have uncommitted changes; commit or stash them first" >&2
  exit 2
fi

start=$(date +%s)
dvc repro "${args[@]}"
echo "dvc repro took $(( $(date +%s) - start )) s"
if [ "$with_sweep" = 1 ]; then
  start=$(date +%s)
  dvc repro "${args[@]}" sweep/dvc.yaml
  echo "dvc repro sweep/dvc.yaml took $(( $(date +%s) - start )) s"
fi

if git diff --quiet -- "${checked[@]}"; then
  echo "REPRODUCED: ${checked[*]} are identical to the committed ones"
else
  echo "NOT REPRODUCED: the pipeline's results differ from the committed ones" >&2
  git --no-pager diff --stat -- "${checked[@]}" >&2
  dvc metrics diff HEAD >&2 || true
  git --no-pager diff -- metrics/ | head -100 >&2
  exit 1
fi
