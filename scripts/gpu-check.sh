#!/usr/bin/env bash
# GPU check (run through the `device` tool on a machine with an NVIDIA GPU and JAX's CUDA PJRT
# plugin): build fewstep with XLA, run `make bench` on the GPU, and a short teacher training.
# Prints the numbers; leaves outputs under ${OUT:-/tmp/fewstep-gpu}.
# Needs the Go toolchain and module cache of this checkout (the device machine has no network).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=simd
OUT=${OUT:-/tmp/fewstep-gpu}
mkdir -p "$OUT"

SP=${SP:-$(python3 -c 'import site; print(site.getsitepackages()[0])')}
PLUGIN=${PLUGIN:-$(ls "$SP"/jax_plugins/xla_cuda*/xla_cuda_plugin.so 2>/dev/null | head -1)}
if [ -z "$PLUGIN" ]; then
  echo "no CUDA PJRT plugin under $SP/jax_plugins (set SP= or PLUGIN=)" >&2
  exit 1
fi
CUDIR=$(ls -d "$SP"/nvidia/cu1* 2>/dev/null | tail -1)
export GOMLX_BACKEND="xla:$PLUGIN" GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0
export LD_LIBRARY_PATH="$CUDIR/lib:$SP/nvidia/cudnn/lib:$SP/nvidia/nccl/lib:$SP/nvidia/nvshmem/lib:${LD_LIBRARY_PATH:-}"
export XLA_FLAGS="--xla_gpu_cuda_data_dir=$CUDIR"
echo "plugin: $PLUGIN"
nvidia-smi --query-gpu=name,memory.total --format=csv || true

echo "== build (-tags xla)"
CGO_ENABLED=1 go build -tags xla -o bin/fewstep-xla ./cmd/fewstep

echo "== bench on the GPU"
BIN=bin/fewstep-xla scripts/bench.sh | tee "$OUT/bench.txt"

echo "== short teacher training on the GPU"
[ -f data/mnist-train.parquet ] || bin/fewstep-xla data import mnist -split train -out data/mnist-train.parquet
rm -rf "$OUT/runs"
time bin/fewstep-xla train -config mnist-teacher -set run.out_dir="$OUT/runs" -set trainer.steps=300 -set trainer.batch_size=128 | tee "$OUT/train.txt"
bin/fewstep-xla sample -run "$OUT/runs/mnist-teacher" -class all -n 10 -out "$OUT/gpu-grid.png"
grep -h '^bench model=' "$OUT/bench.txt"
