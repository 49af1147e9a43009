package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
)

// keepModels and saveModel are set by the ONNX Runtime build (onnx.go); nil elsewhere.
var (
	keepModels func(compute.Backend) bool
	saveModel  func(compute.Backend, compute.Executable, string) error
)

// KeepONNXModels makes an ONNX Runtime backend keep the model of every graph it compiles from now
// on, for DumpGraph. It reports false on other backends.
func KeepONNXModels(b compute.Backend) bool {
	return keepModels != nil && keepModels(b)
}

// DumpGraph writes g's compiled ONNX model to dir/name.onnx (after KeepONNXModels). The model is
// the whole compiled computation (a training step: gradients and optimizer included), for per-op
// profiling outside fewstep (scripts/ort-profile.mjs).
func DumpGraph(g *graph.Graph, dir, name string) error {
	if saveModel == nil || g == nil {
		return fmt.Errorf("dump %s: only the ONNX Runtime backend can save its graphs", name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, name+".onnx")
	if err := saveModel(g.Backend(), g.Executable(), path); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	return nil
}
