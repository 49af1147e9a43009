package models

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestFastOpsMatchLibrary: values and gradients of SliceAxisFast, PadSigned, Concatenate (with
// the overridden gradient) and MatMulCF equal GoMLX's Slice, Pad and Dot.
func TestFastOpsMatchLibrary(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(5, 6))
	x := to32(randSlice(rng, 2*5*4*3))
	w := to32(randSlice(rng, 3*7))
	r1 := to32(randSlice(rng, 2*3*4*3))
	r2 := to32(randSlice(rng, 2*8*4*3))
	r3 := to32(randSlice(rng, 2*10*4*3))
	r4 := to32(randSlice(rng, 7*40))
	build := func(fast bool) func(x, w, r1, r2, r3, r4 *Node) []*Node {
		return func(x, w, r1, r2, r3, r4 *Node) []*Node {
			var a, b, c, d *Node
			if fast {
				a = SliceAxisFast(x, 1, 1, 4)
				b = PadSigned(x, compute.PadAxis{}, compute.PadAxis{Start: 4, End: -1}, compute.PadAxis{}, compute.PadAxis{})
				c = Concatenate([]*Node{x, x}, 1)
				d = MatMulCF(Transpose(w, 0, 1), Transpose(Reshape(x, 40, 3), 0, 1)) // [7, 40]
			} else {
				a = Slice(x, AxisRange(), AxisRange(1, 4))
				b = Pad(Slice(x, AxisRange(), AxisRange(0, 4)), ScalarZero(x.Graph(), x.DType()),
					compute.PadAxis{}, compute.PadAxis{Start: 4}, compute.PadAxis{}, compute.PadAxis{})
				c = nil // the concatenation term is written out below
				d = Transpose(Dot(Reshape(x, 40, 3), w).Product(), 0, 1)
			}
			var cTerm *Node
			if c != nil {
				cTerm = ReduceAllSum(Mul(c, r3))
			} else { // Σ concat(x, x)·r3 = Σ x·r3[:, :5] + Σ x·r3[:, 5:]
				cTerm = Add(ReduceAllSum(Mul(x, Slice(r3, AxisRange(), AxisRange(0, 5)))), ReduceAllSum(Mul(x, Slice(r3, AxisRange(), AxisRange(5, 10)))))
			}
			loss := Add(Add(ReduceAllSum(Mul(a, r1)), ReduceAllSum(Mul(b, r2))), Add(cTerm, ReduceAllSum(Mul(d, r4))))
			grads := Gradient(loss, x, w)
			return []*Node{loss, grads[0], grads[1]}
		}
	}
	args := []any{tensors.FromFlatDataAndDimensions(x, 2, 5, 4, 3), tensors.FromFlatDataAndDimensions(w, 3, 7),
		tensors.FromFlatDataAndDimensions(r1, 2, 3, 4, 3), tensors.FromFlatDataAndDimensions(r2, 2, 8, 4, 3),
		tensors.FromFlatDataAndDimensions(r3, 2, 10, 4, 3), tensors.FromFlatDataAndDimensions(r4, 7, 40)}
	fast := MustExecOnceN(backend, build(true), args...)
	ref := MustExecOnceN(backend, build(false), args...)
	for i, name := range []string{"loss", "dx", "dw"} {
		a, b := tensors.MustCopyFlatData[float32](fast[i]), tensors.MustCopyFlatData[float32](ref[i])
		for j := range b {
			if d := a[j] - b[j]; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%s[%d]: fast %g, library %g", name, j, a[j], b[j])
			}
		}
	}
}
