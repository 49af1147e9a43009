#!/usr/bin/env bash
# `make fashion-latent` (part 15): latent diffusion on Fashion-MNIST, end to end. Trains the
# autoencoder (configs/fashion-autoencoder.yaml) unless runs/fashion-autoencoder has a checkpoint,
# scores its reconstructions (PSNR, SSIM, rFID), encodes the train and test splits to 8x8x4
# latents normalized per channel (data/fashion-{train,test}-latent.parquet, re-encoded whenever the
# autoencoder is newer),
# trains (or resumes) the latent teacher, the tiny decoder, the latent LADD student and the pruned
# one-step SDXS student (on noise–latent pairs), and evaluates them next to the pixel teacher
# (runs/fashion-teacher, if trained), then the full SDXS pipeline (student + tiny decoder) next to
# the teacher with each decoder.
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs it
# on ONNX Runtime.
set -euo pipefail
no_teacher=1
source "$(dirname "$0")/common.sh"
for split in train test; do
  [ -f data/fashion-$split.parquet ] || { make -s fashion-mnist && "$bin" data import fashion-mnist -split $split -out data/fashion-$split.parquet; }
done
ae=runs/fashion-autoencoder
ls "$ae"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1 || "$bin" train -config fashion-autoencoder
"$bin" eval -autoencoder "$ae" -n "${N:-5000}"
newest=$(ls "$ae"/checkpoints/ckpt-*.safetensors | tail -1)
for split in train test; do
  out=data/fashion-$split-latent.parquet
  # per-channel normalized latents (-norm channel; the same FID as LDM's global scale, README part 15);
  # a file written before with the global scale (no channel_norm in its metadata) is re-encoded
  if [ ! -f "$out" ] || [ "$newest" -nt "$out" ] || ! grep -q channel_norm "$out"; then
    "$bin" data encode -norm channel -autoencoder "$ae" -data data/fashion-$split.parquet -out "$out"
  fi
done
resumable train runs/fashion-latent-teacher -config fashion-latent-teacher
resumable train runs/fashion-tiny-decoder -config fashion-tiny-decoder
resumable distill runs/fashion-latent-ladd -config fashion-latent-ladd
pairs=data/fashion-latent-pairs.parquet
[ -f "$pairs" ] || "$bin" distill pairs -teacher runs/fashion-latent-teacher -n 10000 -steps 8 -cfg 2 -out "$pairs"
resumable distill runs/fashion-latent-sdxs -config fashion-latent-sdxs
runs=(-run runs/fashion-latent-teacher@50 -run runs/fashion-latent-ladd@1,2,4)
ls runs/fashion-teacher/checkpoints/ckpt-*.safetensors >/dev/null 2>&1 && runs+=(-run runs/fashion-teacher@50)
"$bin" eval "${runs[@]}" -n "${N:-5000}"
# the full SDXS pipeline next to the teacher: pruned one-step student + tiny decoder, timed end to end
"$bin" eval -run runs/fashion-latent-teacher@50 -run runs/fashion-latent-teacher@50 -run runs/fashion-latent-sdxs@1 \
  -decoder full,runs/fashion-tiny-decoder,runs/fashion-tiny-decoder -n "${N:-5000}"
