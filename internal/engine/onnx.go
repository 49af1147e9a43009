//go:build onnx

package engine

import (
	"os"

	"github.com/gomlx/compute"
	// ONNX Runtime backend (cgo; dlopens libonnxruntime.so, see `make onnxruntime`).
	onnxbackend "github.com/gomlx/compute-onnx"
)

func init() {
	// Never download ONNX Runtime silently: fewstep installs it with `make onnxruntime`.
	if _, ok := os.LookupEnv("GOMLX_NO_AUTO_INSTALL"); !ok {
		_ = os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	}
}

func init() {
	keepModels = func(b compute.Backend) bool {
		ob, ok := b.(*onnxbackend.Backend)
		if ok {
			ob.SetKeepModelProto(true)
		}
		return ok
	}
	saveModel = func(b compute.Backend, exe compute.Executable, path string) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := onnxbackend.SaveModel(b, exe, f, nil, nil); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
}
