#!/usr/bin/env bash
# `make interop` (not in CI: it needs npm): exports a run as ONNX (denoiser + K-step generator,
# batch 4) with the ONNX Runtime build, writes fewstep's own outputs on the pure-Go backend for the
# same inputs, and checks that ONNX Runtime for Node (onnxruntime-node@1.30.0) reproduces them
# within 1e-4 relative. RUNS lists the runs (default: the quickstart teacher, and the LADD student
# when present, whose renoise sampler feeds fresh step noise through the z input).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-ort.sh
export GOMLX_BACKEND=onnx:$PWD/third_party/onnxruntime/libonnxruntime.so.1 GOMLX_NO_AUTO_INSTALL=1
runs=${RUNS:-runs/mnist-teacher $(ls -d runs/mnist-ladd 2>/dev/null || true)}
out=${OUT:-runs/interop}
for run in $runs; do
  name=$(basename "$run")
  bin/fewstep-onnx export -run "$run" -format onnx -batch 4 -out "$out/$name.onnx" -reference "$out/$name-ref"
  node scripts/interop.mjs "$out/$name-ref"
done
