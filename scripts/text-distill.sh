#!/usr/bin/env bash
# `make text-distill` (after `make text-teacher`): LADD and Imagine Flash students of the
# caption-conditioned MNIST teacher (part 13). Writes 10,000 CFG-2 teacher samples prompted with
# the caption templates in turn (data/mnist-text-synth-cfg2.parquet, mixed into LADD's training
# data as in `make ladd`), distills both students (or resumes them) and evaluates teacher and
# students in one table with the class names as prompts, then with every template in turn.
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs it
# on ONNX Runtime.
set -euo pipefail
no_teacher=1
source "$(dirname "$0")/common.sh"
teacher=runs/mnist-text-teacher
if ! ls "$teacher"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
  echo "no text teacher in $teacher: run 'make text-teacher' first" >&2
  exit 1
fi
synth=data/mnist-text-synth-cfg2.parquet
[ -f "$synth" ] || "$bin" distill generate -teacher "$teacher" -n 10000 -cfg 2 -steps 8 -out "$synth"
for preset in mnist-text-ladd mnist-text-imagineflash; do
  resumable distill runs/$preset -config $preset
done
runs=(-run "$teacher@50" -run runs/mnist-text-ladd@1,2,4 -run runs/mnist-text-imagineflash@1,2,3,4)
"$bin" eval "${runs[@]}" -n "${N:-5000}"                       # prompts: the class names
"$bin" eval "${runs[@]}" -n "${N:-5000}" -prompts templates    # every template in turn
