#!/usr/bin/env bash
# `make imagineflash`: distill the quickstart teacher (runs/mnist-teacher) with Imagine Flash
# (configs/mnist-imagineflash.yaml: backward distillation, shifted reconstruction loss) and the
# forward-distillation baseline (runs/mnist-if-forward), then evaluate both at 1–4 steps next to
# the teacher at 50 steps in one table.
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs
# it on ONNX Runtime, about 2x faster than the default pure-Go backend.
set -euo pipefail
source "$(dirname "$0")/common.sh"
distill runs/mnist-imagineflash -config mnist-imagineflash
distill runs/mnist-if-forward -config mnist-imagineflash -set imagine_flash.mode=forward -set run.name=mnist-if-forward
"$bin" eval -run "$teacher@50" -run runs/mnist-imagineflash@1,2,3,4 -run runs/mnist-if-forward@1,2,3,4 -n "${N:-5000}"
