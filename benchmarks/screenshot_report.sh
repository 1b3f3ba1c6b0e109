#!/usr/bin/env bash
# Render a t2ibench HTML report in headless Chromium and save a screenshot: the check that the
# page opens correctly in a real browser (the report test runs it on a synthetic run).
#
# Usage: benchmarks/screenshot_report.sh RUN_DIR|REPORT.html [OUT.png] [WIDTHxHEIGHT]
#   RUN_DIR: writes RUN_DIR/results/report.html first (t2ibench report), then screenshots it.
#   Default OUT.png: next to the report, report.png; default size 1200x1600.
# Needs Debian's chromium: apt-get update && apt-get install -y chromium
# Then look at OUT.png (an image viewer, or your editor's image preview).
set -euo pipefail
target=${1:?usage: screenshot_report.sh RUN_DIR|REPORT.html [OUT.png] [WIDTHxHEIGHT]}
if [[ -d "$target" ]]; then
  t2ibench report "$target" >/dev/null
  html="$target/results/report.html"
else
  html="$target"
fi
html=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
out=${2:-$(dirname "$html")/report.png}
size=${3:-1200x1600}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
  echo "screenshot_report.sh: chromium not found; install it: apt-get update && apt-get install -y chromium" >&2
  exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --screenshot="$out" --window-size="${size/x/,}" \
  "file://$html" >/dev/null 2>&1
[[ -s "$out" ]] || { echo "screenshot_report.sh: no screenshot written" >&2; exit 1; }
echo "$out"
