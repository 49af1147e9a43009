#!/usr/bin/env bash
# `make accelerators` (part 16): the plug-and-play accelerators of the quickstart teacher — LCM,
# LCM-LoRA, PeRFlow, PeRFlow-LoRA (configs/mnist-{lcm,lcm-lora,perflow,perflow-lora}.yaml) — and
# Emu quality tuning with and without LoRA (mnist-qualitytune, mnist-qualitytune-lora); then the
# adapters and weight deltas as files (weights/: lcm-lora, quality-lora, perflow-delta,
# perflow-lora-delta) and one eval table: the teacher at 50 and 16 steps, every student at its
# step counts, LCM-LoRA + the quality LoRA on the teacher at 4 steps, the quality LoRA alone, the
# quality-tuned teacher at 50 steps and with PeRFlow's ΔW at 4. About 70 minutes on 2 cores with
# ONNX Runtime (FEWSTEP_BIN=bin/fewstep-onnx and GOMLX_BACKEND set); N=1000 for a quick table.
set -euo pipefail
source "$(dirname "$0")/common.sh"
for m in lcm lcm-lora perflow perflow-lora; do distill runs/mnist-$m -config mnist-$m; done
scored=data/mnist-train-scored.parquet
[ -f "$scored" ] || "$bin" data score -data data/mnist-train.parquet -scorer classifier -out "$scored"
finetune runs/mnist-qualitytune -config mnist-qualitytune
finetune runs/mnist-qualitytune-lora -config mnist-qualitytune-lora
w=weights
mkdir -p "$w"
"$bin" export -run runs/mnist-lcm-lora -lora-only -out "$w/lcm-lora.safetensors"
"$bin" export -run runs/mnist-qualitytune-lora -checkpoint best -lora-only -out "$w/quality-lora.safetensors"
"$bin" export -run runs/mnist-perflow -delta -out "$w/perflow-delta.safetensors"
"$bin" export -run runs/mnist-perflow-lora -delta -out "$w/perflow-lora-delta.safetensors"
ddim4='sampler=ddim+spacing=trailing+cfg=1'
"$bin" eval -checkpoint best -n "${N:-5000}" -run "$teacher@50,16" \
  -run runs/mnist-lcm@1,2,4 -run runs/mnist-lcm-lora@4 -run runs/mnist-perflow@4 -run runs/mnist-perflow-lora@4 \
  -run "$teacher@4+lora=$w/lcm-lora.safetensors+lora=$w/quality-lora.safetensors+sampler=renoise+cfg=1+as=teacher-lcmlora-qualitylora" \
  -run "$teacher@16+lora=$w/quality-lora.safetensors+as=teacher-qualitylora" \
  -run runs/mnist-qualitytune@50 \
  -run "runs/mnist-qualitytune@4+delta=$w/perflow-delta.safetensors+$ddim4+as=qualitytune-perflowdelta" \
  -run "runs/mnist-qualitytune@4+delta=$w/perflow-lora-delta.safetensors+$ddim4+as=qualitytune-perflowloradelta"
