//go:build onnx

package models

import (
	"os"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute-onnx"
)

// TestConv2DOnONNXRuntime: on ONNX Runtime, the native convolution (stride 2 via subsampling) and
// fewstep's conv gradient (convNativeVJP) match the float64 reference. Run with `make test-onnx`.
func TestConv2DOnONNXRuntime(t *testing.T) {
	lib := os.Getenv("FEWSTEP_ONNXRUNTIME")
	if lib == "" {
		t.Skip("FEWSTEP_ONNXRUNTIME (path of libonnxruntime.so.1) not set; run `make test-onnx`")
	}
	ort, err := compute.NewWithConfig("onnx:" + lib)
	if err != nil {
		t.Fatal(err)
	}
	checkConvs(t, ort, []convCase{
		{"3x3 s1 native", 6, 5, 3, 4, 3, 1, ConvNative},
		{"5x5 s1 native", 5, 5, 2, 2, 5, 1, ConvNative},
		{"3x3 s2 native", 6, 8, 2, 3, 3, 2, ConvNative},
		{"3x3 s1 auto", 6, 6, 3, 3, 3, 1, ConvAuto},
	})
}
