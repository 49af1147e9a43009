# Sourced by the recipes (ladd.sh, imagineflash.sh, sdxs.sh, accelerators.sh, fashion-latent.sh,
# text-teacher.sh, text-distill.sh, emoji-text-teacher.sh, emoji-latent.sh):
# the Go environment, the binary ($bin: FEWSTEP_BIN, default bin/fewstep, built here), the
# quickstart teacher ($teacher, which must exist unless the recipe sets no_teacher=1 before
# sourcing) and resumable VERB RUN_DIR ARGS… (distill RUN_DIR ARGS…, finetune RUN_DIR ARGS…), which
# resume RUN_DIR when it has a checkpoint and otherwise start `fewstep VERB ARGS…`.
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
bin=${FEWSTEP_BIN:-bin/fewstep}
[ "$bin" = bin/fewstep ] && go build -o bin/fewstep ./cmd/fewstep
teacher=runs/mnist-teacher
if [ "${no_teacher:-0}" != 1 ] && ! ls "$teacher"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
  echo "no teacher in $teacher: run 'make quickstart' first" >&2
  exit 1
fi
resumable() {
  local cmd=$1 run=$2
  shift 2
  if ls "$run"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
    "$bin" "$cmd" -resume "$run"
  else
    "$bin" "$cmd" "$@"
  fi
}
distill() { resumable distill "$@"; }
finetune() { resumable finetune "$@"; }
# emoji_data downloads the emoji package (`make emoji`) and imports it once, ~10% of the names held
# out: data/emoji-train.parquet and data/emoji-heldout.parquet.
emoji_data() {
  make -s emoji
  [ -f data/emoji-train.parquet ] && [ -f data/emoji-heldout.parquet ] ||
    "$bin" data import emoji -out data/emoji-train.parquet -heldout-out data/emoji-heldout.parquet
}
