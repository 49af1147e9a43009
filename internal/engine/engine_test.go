package engine

import (
	"strings"
	"testing"
)

func TestBackendSelection(t *testing.T) {
	t.Setenv(EnvBackend, "")
	b, err := New()
	if err != nil {
		t.Fatalf("default backend: %v", err)
	}
	if !strings.Contains(b.Name(), "Go") {
		t.Fatalf("default backend is %q, want the pure-Go backend", b.Name())
	}
	for config, want := range map[string]string{
		"xla:cuda":  "-tags xla",
		"tpu":       "not compiled into this binary",
		"onnx:cpu":  "-tags onnx",
		"nonesuch:": "not compiled into this binary",
	} {
		t.Setenv(EnvBackend, config)
		_, err := New()
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("GOMLX_BACKEND=%s: error %v, want one line containing %q", config, err, want)
		}
	}
}

func TestBuiltWithSIMD(t *testing.T) {
	if !SIMD {
		t.Fatal("tests must run with GOEXPERIMENT=simd (see Makefile)")
	}
}

// TestONNXDefaults: no_mem_pattern is added unless the value sets mem_pattern itself.
func TestONNXDefaults(t *testing.T) {
	for in, want := range map[string]string{
		"onnx":                            "onnx:no_mem_pattern",
		"onnx:/lib/libonnxruntime.so.1":   "onnx:/lib/libonnxruntime.so.1,no_mem_pattern",
		"onnx:cpu,intra_op_num_threads=2": "onnx:cpu,intra_op_num_threads=2,no_mem_pattern",
		"onnx:/lib/x.so,mem_pattern=true": "onnx:/lib/x.so,mem_pattern=true",
		"onnx:/lib/x.so,no_mem_pattern":   "onnx:/lib/x.so,no_mem_pattern",
	} {
		if got := ONNXDefaults(in); got != want {
			t.Errorf("ONNXDefaults(%q) = %q, want %q", in, got, want)
		}
	}
}
