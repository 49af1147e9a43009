# fewstep: every target runs with the toolchain and SIMD settings the project needs.
export GOTOOLCHAIN := go1.27.3
export GOEXPERIMENT := simd

GO  ?= go
BIN ?= bin/fewstep

.PHONY: build build-xla quickstart test test-short bench clean

build:
	$(GO) build -o $(BIN) ./cmd/fewstep

# XLA/PJRT (CUDA GPUs): needs cgo; select at run time with GOMLX_BACKEND=xla:/abs/path/xla_cuda_plugin.so
build-xla:
	CGO_ENABLED=1 $(GO) build -tags xla -o bin/fewstep-xla ./cmd/fewstep

# The README's first command: import MNIST, train the default teacher, write a class grid.
quickstart:
	scripts/quickstart.sh

# The README's second command (also what CI runs).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Speed and memory targets live here, not in tests.
bench: build
	scripts/bench.sh

clean:
	rm -rf bin
