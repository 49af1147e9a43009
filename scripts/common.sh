# Sourced by the distillation recipes (ladd.sh, imagineflash.sh, sdxs.sh): the Go environment, the
# binary ($bin: FEWSTEP_BIN, default bin/fewstep, built here), the quickstart teacher ($teacher,
# which must exist) and distill RUN_DIR ARGS…, which resumes RUN_DIR when it has a checkpoint and
# otherwise starts `fewstep distill ARGS…`.
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
bin=${FEWSTEP_BIN:-bin/fewstep}
[ "$bin" = bin/fewstep ] && go build -o bin/fewstep ./cmd/fewstep
teacher=runs/mnist-teacher
if ! ls "$teacher"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
  echo "no teacher in $teacher: run 'make quickstart' first" >&2
  exit 1
fi
distill() {
  local run=$1
  shift
  if ls "$run"/checkpoints/ckpt-*.safetensors >/dev/null 2>&1; then
    "$bin" distill -resume "$run"
  else
    "$bin" distill "$@"
  fi
}
