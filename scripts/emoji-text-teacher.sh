#!/usr/bin/env bash
# `make emoji-text-teacher`: the text-conditioned emoji teacher (configs/emoji-text-teacher.yaml,
# part 13). Downloads the emoji package (npm, `make emoji`), imports it with ~10% of the emoji names
# held out, trains (or resumes) the run and writes two 8-prompt x 8-seed grids: prompts from the
# training names (the config's sample.prompts) and from held-out names (never seen in training).
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs it
# on ONNX Runtime.
set -euo pipefail
no_teacher=1
source "$(dirname "$0")/common.sh"
emoji_data
run=runs/emoji-text-teacher
resumable train "$run" -config emoji-text-teacher
"$bin" sample -run "$run" -n 8 -out "$run/samples/train-prompts.png"
"$bin" sample -run "$run" -n 8 -prompts configs/emoji-heldout-prompts.txt -out "$run/samples/heldout-prompts.png"
