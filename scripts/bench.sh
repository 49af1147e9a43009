#!/usr/bin/env bash
# `make bench`: time the RefUNet-S training step and forward pass at batch 64 (and the default
# teacher), ending with one machine-readable `bench model=... ` line per model.
# Compare with PyTorch on the same machine (alternate the runs on a quiet machine):
#   apt-get install -y python3-torch && /usr/bin/python3 ../shared/anchors/torch_refunet.py --batch 64
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
BIN=${BIN:-bin/fewstep}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/fewstep
ORT=third_party/onnxruntime/libonnxruntime.so.1
: > /tmp/fewstep-bench-onnx.txt
if [ -f "$ORT" ] && [ -x bin/fewstep-onnx ]; then   # optional backend: make onnxruntime build-onnx
  GOMLX_BACKEND="onnx:$PWD/$ORT" bin/fewstep-onnx bench -config bench-refunet-s -name refunet-s-onnx -batch 64 -warmup 3 -steps 20 | tee /tmp/fewstep-bench-onnx.txt
fi
"$BIN" bench -config bench-refunet-s -name refunet-s -batch 64 -warmup 3 -steps 20 | tee /tmp/fewstep-bench-refunet.txt
"$BIN" bench -config mnist-teacher -name mnist-teacher -batch 64 -warmup 3 -steps 20 | tee /tmp/fewstep-bench-teacher.txt
# Data loader throughput (decoded, batched, 2 workers) next to what training consumes.
: > /tmp/fewstep-bench-data.txt
[ -f data/mnist-train.parquet ] || "$BIN" data import mnist -split train -out data/mnist-train.parquet
"$BIN" data bench data/mnist-train.parquet -name mnist -batch 64 | tee -a /tmp/fewstep-bench-data.txt
if [ -f third_party/emoji/emoji-datasource-twitter-16.0.0.tgz ]; then   # make emoji
  [ -f data/emoji.parquet ] || "$BIN" data import emoji -out data/emoji.parquet
  "$BIN" data bench data/emoji.parquet -name emoji -size 64 -channels 3 -hflip -batch 64 | tee -a /tmp/fewstep-bench-data.txt
fi
echo
grep -h '^bench loader=' /tmp/fewstep-bench-data.txt
grep -h '^bench model=' /tmp/fewstep-bench-onnx.txt /tmp/fewstep-bench-teacher.txt /tmp/fewstep-bench-refunet.txt
