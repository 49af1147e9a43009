//go:build onnx

package models

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute-onnx"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestConv2DOnONNXRuntime: on ONNX Runtime, the native convolution and fewstep's conv gradient
// (convNativeVJP: dx by a conv of the zero-upsampled dy, dW by a conv with dy as kernel) match the
// float64 reference, for odd and even sizes, stride 1 and 2. Run with `make test-onnx`.
func TestConv2DOnONNXRuntime(t *testing.T) {
	ort := ortBackend(t)
	checkConvs(t, ort, []convCase{
		{"3x3 s1 native", 6, 5, 3, 4, 3, 1, ConvNative},
		{"5x5 s1 native", 5, 5, 2, 2, 5, 1, ConvNative},
		{"3x3 s2 native", 6, 8, 2, 3, 3, 2, ConvNative},
		{"5x5 s2 native", 4, 6, 3, 2, 5, 2, ConvNative},
		{"3x3 s1 native odd", 7, 5, 2, 3, 3, 1, ConvNative},
		// kernelGradient's three crop plans: rows/columns (most cases), x per tap, dy per tap.
		{"3x3 s1 native C=1", 5, 5, 1, 4, 3, 1, ConvNative},
		{"3x3 s1 native C>N", 5, 6, 4, 2, 3, 1, ConvNative},
		{"3x3 s1 auto", 6, 6, 3, 3, 3, 1, ConvAuto},
	})
}

// TestLoRARankMaskOnONNXRuntime: LoRA rank dropout's counter hash (uint32 multiply, xor, logical
// shifts) gives the host's masks on ONNX Runtime too.
func TestLoRARankMaskOnONNXRuntime(t *testing.T) { checkLoRARankMask(t, ortBackend(t)) }

// TestUpsampleConvOnONNXRuntime: the sub-pixel UpsampleConv2D equals Conv2D(Upsample2x(x)) on ONNX
// Runtime, in value and in the input, kernel and bias gradients.
func TestUpsampleConvOnONNXRuntime(t *testing.T) {
	ort := ortBackend(t)
	const c, n, bsz, h, w = 3, 4, 2, 5, 6
	rng := rand.New(rand.NewPCG(3, 4))
	store := model.NewStore()
	mustVar(t, store, "/c/kernel", tensors.FromFlatDataAndDimensions(to32(randSlice(rng, 9*c*n)), 3, 3, c, n))
	mustVar(t, store, "/c/bias", tensors.FromFlatDataAndDimensions(to32(randSlice(rng, n)), n))
	b := &Builder{Frozen: true}
	exec := model.MustNewExec(ort, store, func(scope *model.Scope, x, r *Node) []*Node {
		scope.SetTraining(x.Graph(), true)
		kv := store.GetVariable("/c/kernel").NodeValue(x.Graph())
		bv := store.GetVariable("/c/bias").NodeValue(x.Graph())
		var outs []*Node
		for _, sub := range []bool{true, false} {
			var y *Node
			if sub {
				y = b.UpsampleConv2D(scope.In("c"), x, n, ConvNative, InitFanIn)
			} else {
				y = b.Conv2D(scope.Shared("c"), Upsample2x(x), n, 3, 1, ConvNative, InitFanIn)
			}
			outs = append(outs, y)
			outs = append(outs, Gradient(ReduceAllSum(Mul(y, r)), x, kv, bv)...)
		}
		return outs
	})
	out := exec.MustCall(tensors.FromFlatDataAndDimensions(to32(randSlice(rng, c*bsz*h*w)), c, bsz, h, w),
		tensors.FromFlatDataAndDimensions(to32(randSlice(rng, n*bsz*4*h*w)), n, bsz, 2*h, 2*w))
	for i, name := range []string{"y", "dx", "dkernel", "dbias"} {
		want := tensors.MustCopyFlatData[float32](out[4+i])
		ref := make([]float64, len(want))
		for j, v := range want {
			ref[j] = float64(v)
		}
		if e := maxRelErr(t, name, out[i], ref); e > 1e-5 {
			t.Errorf("%s: sub-pixel vs upsample+conv: max relative error %.3g > 1e-5", name, e)
		}
	}
}

// ortBackend is the ONNX Runtime backend of $FEWSTEP_ONNXRUNTIME (set by `make test-onnx`); the
// test is skipped without it.
func ortBackend(t *testing.T) compute.Backend {
	t.Helper()
	lib := os.Getenv("FEWSTEP_ONNXRUNTIME")
	if lib == "" {
		t.Skip("FEWSTEP_ONNXRUNTIME (path of libonnxruntime.so.1) not set; run `make test-onnx`")
	}
	ort, err := compute.NewWithConfig("onnx:" + lib)
	if err != nil {
		t.Fatal(err)
	}
	return ort
}
