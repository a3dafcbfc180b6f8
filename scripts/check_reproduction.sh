#!/usr/bin/env bash
# Prove that the committed results reproduce: run the whole pipeline from nothing and fail if dvc.lock or
# metrics/ differ from what git has. Run it in a clean clone (it refuses a tree with uncommitted changes).
#   bash scripts/check_reproduction.sh            # dvc repro (from an empty cache this runs every stage)
#   bash scripts/check_reproduction.sh --force    # rerun every stage even if DVC thinks it is up to date
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1

if [ -n "$(git status --porcelain --untracked-files=no -- dvc.lock dvc.yaml params.yaml metrics)" ]; then
  echo "check_reproduction: dvc.lock, dvc.yaml, params.yaml or metrics/ have uncommitted changes; commit or stash them first" >&2
  exit 2
fi

start=$(date +%s)
dvc repro "$@"
echo "dvc repro took $(( $(date +%s) - start )) s"

if git diff --quiet -- dvc.lock metrics/; then
  echo "REPRODUCED: dvc.lock and metrics/ are identical to the committed ones"
else
  echo "NOT REPRODUCED: the pipeline's results differ from the committed ones" >&2
  git --no-pager diff --stat -- dvc.lock metrics/ >&2
  dvc metrics diff HEAD >&2 || true
  git --no-pager diff -- metrics/ | head -100 >&2
  exit 1
fi
