//go:build onnx

package engine

import (
	"os"

	// ONNX Runtime backend (cgo; dlopens libonnxruntime.so, see `make onnxruntime`).
	_ "github.com/gomlx/compute-onnx"
)

func init() {
	// Never download ONNX Runtime silently: fewstep installs it with `make onnxruntime`.
	if _, ok := os.LookupEnv("GOMLX_NO_AUTO_INSTALL"); !ok {
		_ = os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	}
}
