#!/usr/bin/env bash
# `make emoji-latent` (part 15): latent text-to-image on 64x64 RGB emoji. Downloads and imports the
# emoji package (`make emoji`, ~10% of the names held out), trains the KL autoencoder
# (configs/emoji-autoencoder.yaml, f = 4: 16x16x4 latents) unless runs/emoji-autoencoder has a
# checkpoint, scores its reconstructions of the held-out names (PSNR, SSIM), encodes the training
# split with the captions and vocabulary (data/emoji-train-latent.parquet, per-channel normalized,
# re-encoded whenever the autoencoder is newer), trains (or resumes) the caption-conditioned latent
# teacher (configs/emoji-latent-teacher.yaml) and writes two 8-prompt x 8-seed grids decoded by the
# autoencoder: training names (the config's sample.prompts) and held-out names.
# FEWSTEP_BIN=bin/fewstep-onnx (after `make onnxruntime build-onnx`, with GOMLX_BACKEND set) runs it
# on ONNX Runtime.
set -euo pipefail
no_teacher=1
source "$(dirname "$0")/common.sh"
emoji_data
ae=runs/emoji-autoencoder
resumable train "$ae" -config emoji-autoencoder
"$bin" eval -autoencoder "$ae" -n "${N:-1000}"
newest=$(ls "$ae"/checkpoints/ckpt-*.safetensors | tail -1)
out=data/emoji-train-latent.parquet
if [ ! -f "$out" ] || [ "$newest" -nt "$out" ]; then
  "$bin" data encode -norm channel -autoencoder "$ae" -data data/emoji-train.parquet -out "$out"
fi
run=runs/emoji-latent-teacher
resumable train "$run" -config emoji-latent-teacher
"$bin" sample -run "$run" -n 8 -out "$run/samples/train-prompts.png"
"$bin" sample -run "$run" -n 8 -prompts configs/emoji-heldout-prompts.txt -out "$run/samples/heldout-prompts.png"
