package models

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

func testBackend(t *testing.T) compute.Backend {
	t.Helper()
	b, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randSlice(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

func to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// refConv is a plain float64 "same"-padded conv: x [B,H,W,C], w [k,k,C,O], bias [O] → y [B,Ho,Wo,O],
// plus the gradients of L = Σ y·r with respect to x, w and bias.
func refConv(x []float64, bsz, h, w, c int, kern []float64, k, o, stride int, bias, r []float64) (y, dx, dw, db []float64) {
	p := k / 2
	ho, wo := h/stride, w/stride
	y = make([]float64, bsz*ho*wo*o)
	dx = make([]float64, len(x))
	dw = make([]float64, len(kern))
	db = make([]float64, o)
	for b := range bsz {
		for i := range ho {
			for j := range wo {
				for oc := range o {
					yi := ((b*ho+i)*wo+j)*o + oc
					acc := bias[oc]
					db[oc] += r[yi]
					for dy := range k {
						for dxx := range k {
							si, sj := i*stride+dy-p, j*stride+dxx-p
							if si < 0 || sj < 0 || si >= h || sj >= w {
								continue
							}
							for ic := range c {
								xi := ((b*h+si)*w+sj)*c + ic
								wi := ((dy*k+dxx)*c+ic)*o + oc
								acc += x[xi] * kern[wi]
								dx[xi] += r[yi] * kern[wi]
								dw[wi] += r[yi] * x[xi]
							}
						}
					}
					y[yi] = acc
				}
			}
		}
	}
	return
}

func maxRelErr(t *testing.T, name string, got *tensors.Tensor, want []float64) float64 {
	t.Helper()
	flat := tensors.MustCopyFlatData[float32](got)
	if len(flat) != len(want) {
		t.Fatalf("%s: got %d values, want %d", name, len(flat), len(want))
	}
	var maxAbs, maxDiff float64
	for i := range want {
		maxAbs = max(maxAbs, math.Abs(want[i]))
		maxDiff = max(maxDiff, math.Abs(float64(flat[i])-want[i]))
	}
	return maxDiff / max(maxAbs, 1e-12)
}

// convCase is one shape/stride/formulation of the conv reference test.
type convCase struct {
	name              string
	h, w, c, o, k, st int
	impl              ConvImpl
}

func TestConv2DMatchesFloat64Reference(t *testing.T) {
	checkConvs(t, testBackend(t), []convCase{
		{"3x3 s1 im2col", 6, 5, 3, 4, 3, 1, ConvIm2Col},
		{"3x3 s2 im2col", 6, 8, 2, 3, 3, 2, ConvIm2Col},
		{"5x5 s1 im2col", 5, 5, 2, 2, 5, 1, ConvIm2Col},
		{"1x1", 4, 4, 3, 5, 1, 1, ConvIm2Col},
		{"3x3 s1 native", 6, 5, 3, 4, 3, 1, ConvNative},
		{"3x3 s2 native", 6, 8, 2, 3, 3, 2, ConvNative},
	})
}

// checkConvs compares Conv2D's output and its input, kernel and bias gradients with refConv.
func checkConvs(t *testing.T, backend compute.Backend, cases []convCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			bsz := 2
			x := randSlice(rng, bsz*tc.h*tc.w*tc.c)
			kern := randSlice(rng, tc.k*tc.k*tc.c*tc.o)
			bias := randSlice(rng, tc.o)
			ho, wo := tc.h/tc.st, tc.w/tc.st
			r := randSlice(rng, bsz*ho*wo*tc.o)
			yRef, dxRef, dwRef, dbRef := refConv(x, bsz, tc.h, tc.w, tc.c, kern, tc.k, tc.o, tc.st, bias, r)

			store := model.NewStore()
			mustVar(t, store, "/c/kernel", tensors.FromFlatDataAndDimensions(to32(kern), tc.k, tc.k, tc.c, tc.o))
			mustVar(t, store, "/c/bias", tensors.FromFlatDataAndDimensions(to32(bias), tc.o))
			b := &Builder{Frozen: true}
			exec := model.MustNewExec(backend, store, func(scope *model.Scope, xn, rn *Node) []*Node {
				scope.SetTraining(xn.Graph(), true)
				// Conv2D is channels-first: [C, B, H, W]; the reference is NHWC.
				y := b.Conv2D(scope.In("c"), TransposeAllAxes(xn, 3, 0, 1, 2), tc.o, tc.k, tc.st, tc.impl, InitFanIn)
				y = TransposeAllAxes(y, 1, 2, 3, 0)
				loss := ReduceAllSum(Mul(y, rn))
				kv := store.GetVariable("/c/kernel").NodeValue(xn.Graph())
				bv := store.GetVariable("/c/bias").NodeValue(xn.Graph())
				grads := Gradient(loss, xn, kv, bv)
				return []*Node{y, grads[0], grads[1], grads[2]}
			})
			out := exec.MustCall(tensors.FromFlatDataAndDimensions(to32(x), bsz, tc.h, tc.w, tc.c),
				tensors.FromFlatDataAndDimensions(to32(r), bsz, ho, wo, tc.o))
			for i, c := range []struct {
				name string
				want []float64
			}{{"y", yRef}, {"dx", dxRef}, {"dkernel", dwRef}, {"dbias", dbRef}} {
				if e := maxRelErr(t, c.name, out[i], c.want); e > 1e-5 {
					t.Errorf("%s: max relative error %.3g > 1e-5", c.name, e)
				}
			}
		})
	}
}

func mustVar(t *testing.T, store *model.Store, path string, v *tensors.Tensor) {
	t.Helper()
	if _, err := store.CreateVariable(path, v); err != nil {
		t.Fatal(err)
	}
}

// TestGroupNormMatchesReference compares GroupNorm with a float64 implementation of
// (x − mean_g)/sqrt(var_g + 1e-5)·gain + bias, including inputs with a large mean.
func TestGroupNormMatchesReference(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const bsz, h, w, c, groups = 2, 3, 4, 6, 3
	x := randSlice(rng, bsz*h*w*c)
	for i := range x {
		x[i] = 3 + 2*x[i]
	}
	gain, bias := randSlice(rng, c), randSlice(rng, c)
	want := refGroupNorm(x, gain, bias, bsz, h*w, c, groups)
	store := model.NewStore()
	mustVar(t, store, "/gn/gain", tensors.FromFlatDataAndDimensions(to32(gain), c))
	mustVar(t, store, "/gn/bias", tensors.FromFlatDataAndDimensions(to32(bias), c))
	b := &Builder{Frozen: true}
	out := model.MustNewExec(backend, store, func(scope *model.Scope, xn *Node) *Node {
		return TransposeAllAxes(b.GroupNorm(scope.In("gn"), TransposeAllAxes(xn, 3, 0, 1, 2), groups), 1, 2, 3, 0)
	}).MustCall1(tensors.FromFlatDataAndDimensions(to32(x), bsz, h, w, c))
	if e := maxRelErr(t, "groupnorm", out, want); e > 2e-5 {
		t.Fatalf("GroupNorm max relative error %.3g", e)
	}
}

// TestGroupNormGradient checks GroupNorm's closed-form gradient (groupNormVJP) for x, gain and
// bias against float64 central differences of the reference, with inputs of large mean.
func TestGroupNormGradient(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(9, 10))
	const bsz, h, w, c, groups = 2, 3, 4, 6, 3
	x := randSlice(rng, bsz*h*w*c)
	for i := range x {
		x[i] = 3 + 2*x[i]
	}
	gain, bias, r := randSlice(rng, c), randSlice(rng, c), randSlice(rng, bsz*h*w*c)
	loss := func(x, gain, bias []float64) float64 {
		var l float64
		for i, y := range refGroupNorm(x, gain, bias, bsz, h*w, c, groups) {
			l += y * r[i]
		}
		return l
	}
	numGrad := func(v []float64) []float64 {
		gr := make([]float64, len(v))
		for i := range v {
			old := v[i]
			v[i] = old + 1e-6
			up := loss(x, gain, bias)
			v[i] = old - 1e-6
			down := loss(x, gain, bias)
			v[i] = old
			gr[i] = (up - down) / 2e-6
		}
		return gr
	}
	wantX, wantGain, wantBias := numGrad(x), numGrad(gain), numGrad(bias)
	store := model.NewStore()
	mustVar(t, store, "/gn/gain", tensors.FromFlatDataAndDimensions(to32(gain), c))
	mustVar(t, store, "/gn/bias", tensors.FromFlatDataAndDimensions(to32(bias), c))
	b := &Builder{Frozen: true}
	out := model.MustNewExec(backend, store, func(scope *model.Scope, xn, rn *Node) []*Node {
		y := TransposeAllAxes(b.GroupNorm(scope.In("gn"), TransposeAllAxes(xn, 3, 0, 1, 2), groups), 1, 2, 3, 0)
		gv := store.GetVariable("/gn/gain").NodeValue(xn.Graph())
		bv := store.GetVariable("/gn/bias").NodeValue(xn.Graph())
		return Gradient(ReduceAllSum(Mul(y, rn)), xn, gv, bv)
	}).MustCall(tensors.FromFlatDataAndDimensions(to32(x), bsz, h, w, c), tensors.FromFlatDataAndDimensions(to32(r), bsz, h, w, c))
	for i, c := range []struct {
		name string
		want []float64
	}{{"dx", wantX}, {"dgain", wantGain}, {"dbias", wantBias}} {
		if e := maxRelErr(t, c.name, out[i], c.want); e > 1e-4 {
			t.Errorf("GroupNorm %s: max relative error %.3g > 1e-4", c.name, e)
		}
	}
}

// refGroupNorm is GroupNorm in float64 on NHWC data x: [bsz, hw, c].
func refGroupNorm(x, gain, bias []float64, bsz, hw, c, groups int) []float64 {
	want := make([]float64, len(x))
	cg := c / groups
	n := float64(hw * cg)
	for b := range bsz {
		for gr := range groups {
			var sum, sq float64
			for p := range hw {
				for k := range cg {
					sum += x[(b*hw+p)*c+gr*cg+k]
				}
			}
			mean := sum / n
			for p := range hw {
				for k := range cg {
					d := x[(b*hw+p)*c+gr*cg+k] - mean
					sq += d * d
				}
			}
			std := math.Sqrt(sq/n + 1e-5)
			for p := range hw {
				for k := range cg {
					ch := gr*cg + k
					i := (b*hw+p)*c + ch
					want[i] = (x[i]-mean)/std*gain[ch] + bias[ch]
				}
			}
		}
	}
	return want
}

// TestUNetShapesAndInit: the RefUNet-S configuration maps [B, 32, 32, 1] to the same shape, its
// output is exactly zero at initialization (zero-initialized output conv), and initialization is
// a pure function of the seed.
func TestUNetShapesAndInit(t *testing.T) {
	backend := testBackend(t)
	for _, patch := range []int{1, 2} {
		cfg := DefaultConfig()
		cfg.PatchSize = patch
		u, err := NewUNet(cfg, 3)
		if err != nil {
			t.Fatal(err)
		}
		store := model.NewStore()
		x := tensors.FromFlatDataAndDimensions(make([]float32, 2*32*32), 2, 32, 32, 1)
		out := model.MustNewExec(backend, store, func(scope *model.Scope, xn, tn, cn *Node) *Node {
			scope.SetTraining(xn.Graph(), true)
			return u.Net(scope.In("model"), xn, tn, cn)
		}).MustCall1(x, []float32{0.1, 0.9}, []int32{3, 10})
		if !out.Shape().Equal(x.Shape()) {
			t.Fatalf("patch %d: output shape %s, want %s", patch, out.Shape(), x.Shape())
		}
		for _, v := range tensors.MustCopyFlatData[float32](out) {
			if v != 0 {
				t.Fatalf("patch %d: output not zero at init: %g", patch, v)
			}
		}
		a := initTensor(3, "/model/stem/kernel", InitFanIn, 1, []int{3, 3, 1, 32})
		b := initTensor(3, "/model/stem/kernel", InitFanIn, 1, []int{3, 3, 1, 32})
		if !slices.Equal(tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](b)) {
			t.Fatal("initialization is not deterministic")
		}
	}
}

func testBackendB() (compute.Backend, error) { return compute.NewWithConfig("go") }

// TestSiLUGradient checks SiLU's closed-form gradient (siluVJP) against float64 central
// differences of x/(1+e^−x).
func TestSiLUGradient(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(11, 12))
	x, r := randSlice(rng, 40), randSlice(rng, 40)
	want := make([]float64, len(x))
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	for i := range x {
		x[i] *= 6
		want[i] = r[i] * (silu(x[i]+1e-6) - silu(x[i]-1e-6)) / 2e-6
	}
	out := model.MustNewExec(backend, model.NewStore(), func(_ *model.Scope, xn, rn *Node) *Node {
		return Gradient(ReduceAllSum(Mul(SiLU(xn), rn)), xn)[0]
	}).MustCall1(tensors.FromFlatDataAndDimensions(to32(x), len(x)), tensors.FromFlatDataAndDimensions(to32(r), len(r)))
	if e := maxRelErr(t, "silu", out, want); e > 1e-5 {
		t.Fatalf("SiLU gradient: max relative error %.3g > 1e-5", e)
	}
}

// TestGELUValueAndGradient: GELU equals ½x(1 + tanh(√(2/π)(x + 0.044715x³))) in float64 and its
// closed-form gradient equals the float64 central difference of that function.
func TestGELUValueAndGradient(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(13, 14))
	x, r := randSlice(rng, 40), randSlice(rng, 40)
	gelu := func(v float64) float64 { return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v))) }
	val, grad := make([]float64, len(x)), make([]float64, len(x))
	for i := range x {
		x[i] *= 4
		val[i] = gelu(x[i])
		grad[i] = r[i] * (gelu(x[i]+1e-6) - gelu(x[i]-1e-6)) / 2e-6
	}
	outs := model.MustNewExec(backend, model.NewStore(), func(_ *model.Scope, xn, rn *Node) []*Node {
		y := GELU(xn)
		return []*Node{y, Gradient(ReduceAllSum(Mul(y, rn)), xn)[0]}
	}).MustCall(tensors.FromFlatDataAndDimensions(to32(x), len(x)), tensors.FromFlatDataAndDimensions(to32(r), len(r)))
	got := tensors.MustCopyFlatData[float32](outs[0])
	for i := range x {
		if math.Abs(float64(got[i])-val[i]) > 1e-6*math.Max(1, math.Abs(val[i])) {
			t.Fatalf("GELU(%g) = %g, float64 %g", x[i], got[i], val[i])
		}
	}
	if e := maxRelErr(t, "gelu", outs[1], grad); e > 1e-5 {
		t.Fatalf("GELU gradient: max relative error %.3g > 1e-5", e)
	}
}
