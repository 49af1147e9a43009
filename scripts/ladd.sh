#!/usr/bin/env bash
# `make ladd`: distill the quickstart teacher (runs/mnist-teacher) into a 4-step student with LADD
# (configs/mnist-ladd.yaml), then evaluate teacher and student in one table. It first writes the
# 10,000 teacher samples (data/mnist-synth-cfg2.parquet) that the preset mixes into its data when
# they are missing.
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs
# it on ONNX Runtime, about 2x faster than the default pure-Go backend.
set -euo pipefail
source "$(dirname "$0")/common.sh"
synth=data/mnist-synth-cfg2.parquet
[ -f "$synth" ] || "$bin" distill generate -teacher "$teacher" -n 10000 -cfg 2 -steps 8 -out "$synth"
distill runs/mnist-ladd -config mnist-ladd
"$bin" eval -run "$teacher@50" -run "runs/mnist-ladd@1,2,4" -n "${N:-5000}"   # each run with its own sampler and cfg
