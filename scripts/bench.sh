#!/usr/bin/env bash
# `make bench`: time the RefUNet-S training step and forward pass at batch 64 on each backend
# built here (pure Go; ONNX Runtime after `make onnxruntime build-onnx`), the default MNIST
# teacher, the data loader, and — when Debian's python3-torch is installed — the PyTorch anchor
# (../shared/anchors/torch_refunet.py), run alternately with fewstep's runs, with the ratios.
# Ends with the machine-readable `bench model=refunet-s …` line of the default (pure-Go) backend.
# BENCH_STEPS (default 20) timed steps per run; BENCH_ROUNDS (default 2) ONNX Runtime/PyTorch pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
BIN=${BIN:-bin/fewstep}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/fewstep
ORT=third_party/onnxruntime/libonnxruntime.so.1
STEPS=${BENCH_STEPS:-20}
ANCHOR=../shared/anchors/torch_refunet.py
out=/tmp/fewstep-bench.txt
: > $out
torch_anchor() {
  if [ -f "$ANCHOR" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    /usr/bin/python3 "$ANCHOR" --batch 64 | grep '^torch ' | sed 's/ sample1_ms.*//' | tee -a $out
  fi
}
if [ -f "$ORT" ] && [ -x bin/fewstep-onnx ]; then   # optional backend: make onnxruntime build-onnx
  for _ in $(seq "${BENCH_ROUNDS:-2}"); do
    GOMLX_BACKEND="onnx:$PWD/$ORT" bin/fewstep-onnx bench -config bench-refunet-s -name refunet-s-onnx -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
    torch_anchor
  done
  GOMLX_BACKEND="onnx:$PWD/$ORT" bin/fewstep-onnx bench -config mnist-teacher -name mnist-teacher-onnx -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
else
  torch_anchor
fi
"$BIN" bench -config mnist-teacher -name mnist-teacher -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
# Formulations on the pure-Go backend: the library's own conv (forward only: its training step
# takes about two minutes) against the default im2col conv below.
"$BIN" bench -config bench-refunet-s -name refunet-s-libconv -set model.conv=native -forward-only -batch 64 -warmup 0 -steps 1 | tee -a $out
"$BIN" bench -config bench-refunet-s -name refunet-s -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
# Data loader throughput (decoded, batched, 2 workers) next to what training consumes.
[ -f data/mnist-train.parquet ] || "$BIN" data import mnist -split train -out data/mnist-train.parquet
"$BIN" data bench data/mnist-train.parquet -name mnist -batch 64 | tee -a $out
if [ -f third_party/emoji/emoji-datasource-twitter-16.0.0.tgz ]; then   # make emoji
  [ -f data/emoji.parquet ] || "$BIN" data import emoji -out data/emoji.parquet
  "$BIN" data bench data/emoji.parquet -name emoji -size 64 -channels 3 -hflip -batch 64 | tee -a $out
fi
echo
grep -h '^bench loader=' $out
# Each fewstep RefUNet-S run against the PyTorch run nearest in time (the one after it, else the last).
awk '
  BEGIN { npend = 0 }
  /^torch refunet/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "train_step_ms") tt = kv[2]; if (kv[1] == "forward_ms") tf = kv[2] }
                     for (j = 0; j < npend; j++) printf "ratio %s train=%.2fx forward=%.2fx (torch %s / %s ms)\n", pend[j], pt[j] / tt, pf[j] / tf, tt, tf
                     npend = 0; have = 1; next }
  /^bench model=refunet-s/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "model") m = kv[2]; if (kv[1] == "train_step_ms") a = kv[2]; if (kv[1] == "forward_ms") b = kv[2] }
                     if (m == "refunet-s" && have) printf "ratio %s train=%.2fx forward=%.2fx (torch %s / %s ms)\n", m, a / tt, b / tf, tt, tf
                     else { pend[npend] = m; pt[npend] = a; pf[npend] = b; npend++ } }
' $out
grep -h '^bench model=' $out | grep -v '^bench model=refunet-s '
grep -h '^bench model=refunet-s ' $out
