#!/usr/bin/env bash
# `make sdxs`: noise–image pairs of the quickstart teacher's ODE (8 DDIM steps, CFG 2), then SDXS
# (configs/mnist-sdxs.yaml) into a pruned one-step student: the warm-up alone (runs/mnist-sdxs) and
# warm-up plus the second stage (runs/mnist-sdxs-2stage), evaluated next to the teacher at 50 steps.
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs
# it on ONNX Runtime, about 2x faster than the default pure-Go backend.
set -euo pipefail
source "$(dirname "$0")/common.sh"
pairs=data/mnist-pairs.parquet
[ -f "$pairs" ] || "$bin" distill pairs -teacher "$teacher" -n 10000 -steps 8 -cfg 2 -out "$pairs"
distill runs/mnist-sdxs -config mnist-sdxs
distill runs/mnist-sdxs-2stage -config mnist-sdxs -set run.name=mnist-sdxs-2stage -set trainer.steps=1500 \
  -set sdxs.sd_weight=1 -set sdxs.sd_start=1000
"$bin" eval -run "$teacher@50" -run runs/mnist-sdxs@1 -run runs/mnist-sdxs-2stage@1 -n "${N:-5000}"
