// Package engine selects the compute backend: the pure-Go backend by default, XLA/PJRT when the
// binary was built with `-tags xla` and GOMLX_BACKEND names it. Nothing here ever downloads a plugin.
package engine

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
)

// EnvBackend is the environment variable that selects the backend (GoMLX's own).
const EnvBackend = compute.ConfigEnvVar

// SIMD reports whether the binary was built with GOEXPERIMENT=simd (set in simd_*.go).
var SIMD = simdEnabled

// New returns the backend named by GOMLX_BACKEND ("go" when unset). Errors are one line that says
// what to set.
func New() (compute.Backend, error) {
	config := strings.TrimSpace(os.Getenv(EnvBackend))
	if config == "" {
		config = "go"
	}
	name, _, _ := strings.Cut(config, ":")
	if !slices.Contains(compute.List(), name) {
		hint := "unset it to use the pure-Go backend"
		switch name {
		case "xla", "stablehlo", "hlo":
			hint = "rebuild with `make build-xla` (go build -tags xla) or unset it to use the pure-Go backend"
		case "onnx", "onnxruntime":
			hint = "rebuild with `make build-onnx` (go build -tags onnx; library: `make onnxruntime`) or unset it to use the pure-Go backend"
		}
		return nil, fmt.Errorf("%s=%q: backend %q is not compiled into this binary (available: %s); %s",
			EnvBackend, config, name, strings.Join(compute.List(), ", "), hint)
	}
	if name == "xla" && !strings.Contains(config, "/") {
		return nil, fmt.Errorf("%s=%q: give the absolute path of the PJRT plugin, e.g. %s=xla:/path/to/xla_cuda_plugin.so (fewstep never downloads plugins; see README \"GPU\")",
			EnvBackend, config, EnvBackend)
	}
	if name == "onnx" {
		config = ONNXDefaults(config)
	}
	b, err := compute.NewWithConfig(config)
	if err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		return nil, fmt.Errorf("%s=%q: backend failed to start: %s", EnvBackend, config, first)
	}
	return b, nil
}

// ONNXDefaults adds fewstep's ONNX Runtime session defaults to a GOMLX_BACKEND=onnx… value:
// no_mem_pattern unless the value sets mem_pattern itself. ONNX Runtime's memory-pattern planner
// pre-allocates one block per graph for every intermediate; without it RefUNet-S's peak RSS went
// from 1.72 to 0.97 GB and RefDiT-S's from 2.9 to 1.74 GB at batch 64, with step times within
// this machine's noise (README, Speed).
func ONNXDefaults(config string) string {
	if strings.Contains(config, "mem_pattern") || strings.Contains(config, "mempattern") {
		return config
	}
	if !strings.Contains(config, ":") {
		return config + ":no_mem_pattern"
	}
	return config + ",no_mem_pattern"
}
