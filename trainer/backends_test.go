//go:build onnx

package trainer

import (
	"os"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute-onnx"
)

// TestBackendsAgree: the same config, weights, data and noise give the same loss trajectory on the
// pure-Go backend (im2col convolutions) and on ONNX Runtime (native convolutions), to ~1e-6.
// Run with `make test-onnx` (needs the library from `make onnxruntime`).
func TestBackendsAgree(t *testing.T) {
	lib := os.Getenv("FEWSTEP_ONNXRUNTIME")
	if lib == "" {
		t.Skip("FEWSTEP_ONNXRUNTIME (path of libonnxruntime.so.1) not set; run `make test-onnx`")
	}
	ort, err := compute.NewWithConfig("onnx:" + lib)
	if err != nil {
		t.Fatal(err)
	}
	var runs [][]float64
	for _, backend := range []compute.Backend{testBackend(t), ort} {
		job := tinyJob(t, t.TempDir(), 10)
		if _, err := Train(t.Context(), backend, job, Options{Out: os.Stderr}); err != nil {
			t.Fatalf("%s: %v", backend.Name(), err)
		}
		runs = append(runs, lossSeq(t, job.RunDir))
	}
	if len(runs[0]) != 10 || len(runs[1]) != 10 {
		t.Fatalf("loss sequences of %d and %d steps", len(runs[0]), len(runs[1]))
	}
	for i := range runs[0] {
		a, b := runs[0][i], runs[1][i]
		if d := (a - b) / a; d > 1e-5 || d < -1e-5 {
			t.Errorf("step %d: go %.7f, onnx %.7f", i+1, a, b)
		}
	}
}
