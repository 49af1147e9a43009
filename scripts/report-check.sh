#!/usr/bin/env bash
# `make report-check` (part 17): render run reports in a real browser. Writes the report of each
# RUN (default: a fresh 40-step smoke run on the MNIST test split, in $OUT/smoke) and of all RUNs
# overlaid, opens each in headless Chromium (Debian package `chromium`, installed here when apt is
# available), and fails if the page logs a script error or has a plot without a drawn series;
# the screenshots are written next to the reports (report.png) — look at them.
#   scripts/report-check.sh [RUN_DIR…]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
bin=${FEWSTEP_BIN:-bin/fewstep}
[ "$bin" = bin/fewstep ] && go build -o bin/fewstep ./cmd/fewstep
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null; then apt-get install -y chromium >/dev/null; else echo "report-check: install chromium" >&2; exit 1; fi
fi
out=${OUT:-/tmp/fewstep-report-check}
runs=("$@")
mkdir -p "$out"
if [ ${#runs[@]} -eq 0 ]; then
  mkdir -p "$out"
  [ -f "$out/mnist-test.parquet" ] || "$bin" data import mnist -split test -out "$out/mnist-test.parquet" >/dev/null
  rm -rf "$out/smoke"
  "$bin" train -config smoke -set data.train="$out/mnist-test.parquet" -set run.out_dir="$out" -set trainer.steps=40 \
    -set trainer.log_every=5 -set trainer.sample_every=20 >/dev/null
  runs=("$out/smoke")
fi
pages=()
for r in "${runs[@]}"; do "$bin" report "$r" >/dev/null; pages+=("$r/report.html"); done
if [ ${#runs[@]} -gt 1 ]; then "$bin" report "${runs[@]}" -out "$out/overlay.html" >/dev/null; pages+=("$out/overlay.html"); fi
fail=0
for p in "${pages[@]}"; do
  abs=$(readlink -f "$p")
  shot="${abs%.html}.png"
  log=$(chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2400 --enable-logging=stderr --v=0 \
    --screenshot="$shot" "file://$abs" 2>&1 || true)
  if grep -q "Uncaught\|CONSOLE.*[Ee]rror" <<<"$log"; then echo "FAIL $p: script errors:"; grep "Uncaught\|CONSOLE" <<<"$log"; fail=1; fi
  dom=$(chromium --headless=new --no-sandbox --disable-gpu --dump-dom "file://$abs" 2>/dev/null)
  plots=$(grep -o "<svg " <<<"$dom" | wc -l)
  empty=$(python3 -c 'import re,sys; d=sys.stdin.read(); print(sum(1 for s in re.findall(r"<svg .*?</svg>", d, re.S) if "<polyline" not in s and "<circle" not in s))' <<<"$dom")
  if [ "$plots" -eq 0 ] || [ "$empty" -ne 0 ]; then echo "FAIL $p: $plots plots, $empty without a series"; fail=1; fi
  [ -s "$shot" ] || { echo "FAIL $p: no screenshot"; fail=1; }
  echo "$p: $plots plots rendered, screenshot $shot"
done
exit $fail
