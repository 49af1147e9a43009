#!/usr/bin/env bash
# `make bench`: time the RefUNet-S and RefDiT-S training steps and forward passes at batch 64 on each backend
# built here (pure Go; ONNX Runtime after `make onnxruntime build-onnx`), the default MNIST
# teacher, the data loader, and — when Debian's python3-torch is installed — the PyTorch anchor
# (../shared/anchors/torch_refunet.py, torch_refdit.py), run alternately with fewstep's runs, with
# the ratios.
# Ends with the machine-readable `bench model=refunet-s …` line of the default (pure-Go) backend.
# BENCH_STEPS (default 20) timed steps per run; BENCH_ROUNDS (default 2) ONNX Runtime/PyTorch pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
BIN=${BIN:-bin/fewstep}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/fewstep
ORT=third_party/onnxruntime/libonnxruntime.so.1
STEPS=${BENCH_STEPS:-20}
ANCHORS=../shared/anchors
out=/tmp/fewstep-bench.txt
: > $out
# Debian's python3-torch runs its linear layers on whatever libblas.so.3 the alternatives system
# selects: with the reference BLAS (the default when OpenBLAS is absent) RefDiT-S's PyTorch step
# takes 35 s instead of ~5 s. Warn once; `apt-get install -y libopenblas0-pthread` fixes it.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if /usr/bin/python3 -c 'import torch' 2>/dev/null && [[ "$blas" != *openblas* && "$blas" != *mkl* ]]; then
  echo "warning: libblas.so.3 is $blas (reference BLAS): the PyTorch anchor's matmuls are ~10x slow; apt-get install -y libopenblas0-pthread" >&2
fi
torch_anchor() { # $1: refunet or refdit
  local a="$ANCHORS/torch_${1:-refunet}.py"
  if [ -f "$a" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    /usr/bin/python3 "$a" --batch 64 | grep '^torch ' | sed 's/ sample1_ms.*//' | tee -a $out
  fi
}
refdit() { # $1: binary, $2: name; RefDiT-S runs on a 16x16x4 latent-shaped input
  "$1" bench -config bench-refdit-s -channels 4 -name "$2" -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
}
if [ -f "$ORT" ] && [ -x bin/fewstep-onnx ]; then   # optional backend: make onnxruntime build-onnx
  for _ in $(seq "${BENCH_ROUNDS:-2}"); do
    GOMLX_BACKEND="onnx:$PWD/$ORT" bin/fewstep-onnx bench -config bench-refunet-s -name refunet-s-onnx -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
    torch_anchor refunet
    GOMLX_BACKEND="onnx:$PWD/$ORT" refdit bin/fewstep-onnx refdit-s-onnx
    torch_anchor refdit
  done
  GOMLX_BACKEND="onnx:$PWD/$ORT" bin/fewstep-onnx bench -config mnist-teacher -name mnist-teacher-onnx -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
else
  torch_anchor refunet
  torch_anchor refdit
fi
"$BIN" bench -config mnist-teacher -name mnist-teacher -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
# Formulations on the pure-Go backend: the library's own conv (forward only: its training step
# takes about two minutes) against the default im2col conv below.
"$BIN" bench -config bench-refunet-s -name refunet-s-libconv -set model.conv=native -forward-only -batch 64 -warmup 0 -steps 1 | tee -a $out
refdit "$BIN" refdit-s
"$BIN" bench -config bench-refunet-s -name refunet-s -batch 64 -warmup 3 -steps "$STEPS" | tee -a $out
# Data loader throughput (decoded, batched, 2 workers) next to what training consumes.
[ -f data/mnist-train.parquet ] || "$BIN" data import mnist -split train -out data/mnist-train.parquet
"$BIN" data bench data/mnist-train.parquet -name mnist -batch 64 | tee -a $out
if [ -f third_party/emoji/emoji-datasource-twitter-16.0.0.tgz ]; then   # make emoji
  [ -f data/emoji.parquet ] || "$BIN" data import emoji -out data/emoji.parquet
  "$BIN" data bench data/emoji.parquet -name emoji -size 64 -channels 3 -hflip -batch 64 | tee -a $out
fi
echo
grep -h '^bench loader=' $out
# Each fewstep RefUNet-S / RefDiT-S run against the PyTorch run of its family nearest in time (the one
# after it, else the last one before it).
awk '
  function field(name,   i, kv) { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] } return "" }
  function show(fam, m, a, b) { printf "ratio %s train=%.2fx forward=%.2fx (torch %s / %s ms)\n", m, a / tt[fam], b / tf[fam], tt[fam], tf[fam] }
  /^torch ref/ { fam = $2; tt[fam] = field("train_step_ms"); tf[fam] = field("forward_ms"); have[fam] = 1
                 for (j = 0; j < np[fam]; j++) show(fam, pm[fam, j], pa[fam, j], pb[fam, j])
                 np[fam] = 0; next }
  /^bench model=ref/ { m = field("model"); fam = (m ~ /^refdit/) ? "refdit" : "refunet"; a = field("train_step_ms"); b = field("forward_ms")
                 if (have[fam] && (m == "refunet-s" || m == "refdit-s")) show(fam, m, a, b)
                 else { k = np[fam] + 0; pm[fam, k] = m; pa[fam, k] = a; pb[fam, k] = b; np[fam] = k + 1 } }
  END { for (fam in np) if (have[fam]) for (j = 0; j < np[fam]; j++) show(fam, pm[fam, j], pa[fam, j], pb[fam, j]) }
' $out
grep -h '^bench model=' $out | grep -v '^bench model=refunet-s '
grep -h '^bench model=refunet-s ' $out
