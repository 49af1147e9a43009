#!/usr/bin/env bash
# `make ort-profile` (needs npm): ONNX Runtime's own per-op profile of fewstep's compiled RefUNet-S (or
# CONFIG=bench-refdit-s: RefDiT-S)
# training step and forward pass (CONFIG, default bench-refunet-s; batch 64). bench -dump-onnx
# saves the graphs the ONNX Runtime backend compiled; scripts/ort-profile.mjs runs them with
# onnxruntime-node@1.30.0 (the same ORT version) and prints the time per op type and per node.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-ort.sh
config=${CONFIG:-bench-refunet-s}
extra=()
[ "$config" = bench-refdit-s ] && extra=(-channels 4)   # RefDiT-S times a 16x16x4 latent-shaped input
dir=${OUT:-runs/ort-profile}
GOMLX_BACKEND=onnx:$PWD/third_party/onnxruntime/libonnxruntime.so.1 GOMLX_NO_AUTO_INSTALL=1 \
  bin/fewstep-onnx bench -config "$config" -name "$config" -batch 64 -warmup 1 -steps 2 -dump-onnx "$dir" "${extra[@]}"
for part in train forward; do
  node scripts/ort-profile.mjs "$dir/$config-$part.onnx" "${RUNS:-5}" "${TOP:-25}" | tee "$dir/$config-$part.txt"
done
