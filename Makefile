# fewstep: every target runs with the toolchain and SIMD settings the project needs.
export GOTOOLCHAIN := go1.27.3
export GOEXPERIMENT := simd

GO  ?= go
BIN ?= bin/fewstep

ORT_DIR := third_party/onnxruntime
ORT_LIB := $(CURDIR)/$(ORT_DIR)/libonnxruntime.so.1

EMOJI_TGZ := third_party/emoji/emoji-datasource-twitter-16.0.0.tgz

.PHONY: build build-xla build-onnx onnxruntime test-onnx interop ort-profile quickstart ladd imagineflash sdxs text-teacher text-distill fashion-latent emoji-latent accelerators report-check emoji-text-teacher test test-short fuzz bench clean datasets fashion-mnist emoji

build:
	$(GO) build -o $(BIN) ./cmd/fewstep

# XLA/PJRT (CUDA GPUs): needs cgo; select at run time with GOMLX_BACKEND=xla:/abs/path/xla_cuda_plugin.so
build-xla:
	CGO_ENABLED=1 $(GO) build -tags xla -o bin/fewstep-xla ./cmd/fewstep

# Optional second CPU backend: ONNX Runtime 1.30 (cgo; the library comes from the npm package
# onnxruntime-node@1.30.0). Run with GOMLX_BACKEND=onnx:$(ORT_LIB)
build-onnx:
	CGO_ENABLED=1 $(GO) build -tags onnx -o bin/fewstep-onnx ./cmd/fewstep

onnxruntime: $(ORT_LIB)

$(ORT_LIB):
	mkdir -p $(ORT_DIR)
	cd $(ORT_DIR) && npm pack --silent onnxruntime-node@1.30.0 >/dev/null && \
	  tar xzf onnxruntime-node-1.30.0.tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 && \
	  mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 . && rm -rf package onnxruntime-node-1.30.0.tgz
	@echo "ONNX Runtime: GOMLX_BACKEND=onnx:$(ORT_LIB)"

# Same weights, same losses on the go and ONNX Runtime backends.
# Cross-runtime check of the ONNX export with onnxruntime-node (npm); not part of CI.
interop: onnxruntime build-onnx
	scripts/interop.sh

# ONNX Runtime's per-op profile of the compiled RefUNet-S step (npm: onnxruntime-node); not in CI.
ort-profile: onnxruntime build-onnx
	scripts/ort-profile.sh

test-onnx: onnxruntime
	FEWSTEP_ONNXRUNTIME=$(ORT_LIB) CGO_ENABLED=1 $(GO) test -tags onnx -count=1 -run "Backends|ONNX" ./trainer/ ./models/ ./generate/

# Optional datasets beyond MNIST (which comes with the Go module cache).
datasets: fashion-mnist emoji

# Fashion-MNIST from Debian's dataset-fashion-mnist (installed where apt is available).
fashion-mnist:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then echo "fashion-mnist: present"; \
	elif command -v apt-get >/dev/null; then apt-get install -y dataset-fashion-mnist; \
	else echo "fashion-mnist: install the Debian package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist)"; exit 1; fi

# Emoji (CC-BY-4.0) from the npm package emoji-datasource-twitter@16.0.0.
emoji: $(EMOJI_TGZ)

$(EMOJI_TGZ):
	mkdir -p third_party/emoji
	cd third_party/emoji && npm pack --silent emoji-datasource-twitter@16.0.0 >/dev/null
	@echo "emoji: $(EMOJI_TGZ)"

# The README's first command: import MNIST, train the default teacher, write a class grid.
quickstart:
	scripts/quickstart.sh

# LADD distillation of the quickstart teacher, then teacher vs student in one eval table.
ladd:
	scripts/ladd.sh

imagineflash:
	scripts/imagineflash.sh

sdxs:
	scripts/sdxs.sh

# Part 13: the caption-conditioned MNIST teacher (configs/mnist-text-teacher.yaml), grid and eval.
text-teacher:
	scripts/text-teacher.sh

# Part 13: LADD and Imagine Flash students of the text teacher (after text-teacher), eval.
text-distill:
	scripts/text-distill.sh

fashion-latent:
	scripts/fashion-latent.sh

# Part 15 on emoji: the 64x64 RGB autoencoder, latents with captions, the latent text teacher, grids.
emoji-latent:
	scripts/emoji-latent.sh

# Part 16: LCM, LCM-LoRA, PeRFlow, PeRFlow-LoRA and quality tuning (+LoRA) of the quickstart
# teacher, the adapters and deltas as files, one eval table (after make quickstart).
accelerators:
	scripts/accelerators.sh

report-check:
	scripts/report-check.sh $(RUNS)

# Part 13: the caption-conditioned 64x64 emoji teacher, grids of training and held-out names.
emoji-text-teacher:
	scripts/emoji-text-teacher.sh

# The README's second command (also what CI runs).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

# A few seconds of coverage-guided fuzzing of the row decoder, the manifest parsers and the
# safetensors reader (CI).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRow$$' -fuzztime 5s ./data/
	$(GO) test -run '^$$' -fuzz '^FuzzManifestCSV$$' -fuzztime 5s ./data/
	$(GO) test -run '^$$' -fuzz '^FuzzManifestJSONL$$' -fuzztime 5s ./data/
	$(GO) test -run '^$$' -fuzz '^FuzzReadSafetensors$$' -fuzztime 5s ./checkpoints/

test-short:
	$(GO) test -short -count=1 ./...

# Speed and memory targets live here, not in tests.
bench: build
	scripts/bench.sh

clean:
	rm -rf bin $(ORT_DIR)
