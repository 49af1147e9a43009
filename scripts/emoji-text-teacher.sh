#!/usr/bin/env bash
# `make emoji-text-teacher`: the text-conditioned emoji teacher (configs/emoji-text-teacher.yaml,
# part 13). Downloads the emoji package (npm, `make emoji`), imports it with ~10% of the emoji names
# held out, trains (or resumes) the run and writes two 8-prompt x 8-seed grids: prompts from the
# training names (the config's sample.prompts) and from held-out names (never seen in training).
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs it
# on ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
bin=${FEWSTEP_BIN:-bin/fewstep}
[ "$bin" = bin/fewstep ] && go build -o bin/fewstep ./cmd/fewstep
make -s emoji
[ -f data/emoji-train.parquet ] && [ -f data/emoji-heldout.parquet ] ||
  "$bin" data import emoji -out data/emoji-train.parquet -heldout-out data/emoji-heldout.parquet
run=runs/emoji-text-teacher
if ls "$run"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
  "$bin" train -resume "$run"
else
  "$bin" train -config emoji-text-teacher
fi
"$bin" sample -run "$run" -n 8 -out "$run/samples/train-prompts.png"
"$bin" sample -run "$run" -n 8 -prompts configs/emoji-heldout-prompts.txt -out "$run/samples/heldout-prompts.png"
