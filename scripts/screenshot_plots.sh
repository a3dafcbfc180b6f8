#!/usr/bin/env bash
# Render a `dvc plots show/diff` page to a PNG with headless Chromium (Debian package `chromium`).
# Usage: scripts/screenshot_plots.sh [dvc_plots/index.html] [out.png] [width,height]
set -euo pipefail

page="${1:-dvc_plots/index.html}"
out="${2:-dvc_plots/screenshot.png}"
size="${3:-1300,2400}"

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "screenshot_plots: chromium not found (apt-get install -y chromium)" >&2; exit 1; }
[ -f "$page" ] || { echo "screenshot_plots: no such page: $page" >&2; exit 1; }

page_url="file://$(realpath "$page")"
out="$(realpath -m "$out")"
rm -f "$out"
# --virtual-time-budget lets vegaEmbed finish before the shot; the page needs no network.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --screenshot="$out" --window-size="$size" --virtual-time-budget=10000 "$page_url" >/dev/null 2>&1 || true
[ -s "$out" ] || { echo "screenshot_plots: chromium wrote no screenshot for $page" >&2; exit 1; }
echo "$out"
