package models

import (
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/nn"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Dense is y = x·W + b over the last axis. x: [..., in] → [..., out]; W: [in, out], b: [out].
func (b *Builder) Dense(scope *model.Scope, x *Node, out int, init Init) *Node {
	s := scope
	g := x.Graph()
	in := x.Shape().Dimensions[x.Rank()-1]
	w := b.loraWeight(s, b.Param(s, g, "weight", init, 1, in, out))
	bias := b.Param(s, g, "bias", InitZeros, 0, out)
	b.FLOPs += 2 * int64(x.Shape().Size()/in) * int64(in) * int64(out)
	if x.Rank() > 2 { // one [M, in]·[in, out] GEMM with its bias (tokens [B, N, D] of the transformers)
		dims := x.Shape().Dimensions
		y := nn.Dense(Reshape(x, -1, in), w, bias, compute.DenseLayoutInputOutputs)
		return Reshape(y, append(slices.Clone(dims[:len(dims)-1]), out)...)
	}
	return nn.Dense(x, w, bias, compute.DenseLayoutInputOutputs)
}

// SiLU is x·sigmoid(x) (the "swish" of Ramachandran et al.).
func SiLU(x *Node) *Node {
	sig := Sigmoid(StopGradient(x))
	y := Mul(x, sig)
	if y.Type() == NodeTypeMul && y.Inputs()[0] == x && y.Inputs()[1] == sig {
		graphMap[NodeId, bool](x.Graph(), siluKey{})[y.Id()] = true
	}
	return y
}

// siluKey marks, in graph state, the x·σ(x) nodes built by SiLU.
type siluKey struct{}

// geluKey marks, in graph state, the x·Φ̃(x) nodes built by GELU.
type geluKey struct{}

// geluC is √(2/π), the tanh form's constant.
var geluC = math.Sqrt(2 / math.Pi)

// GELU is the tanh form of the Gaussian error linear unit (Hendrycks & Gimpel, arXiv 1606.08415),
// x·Φ̃(x) with Φ̃(x) = ½(1 + tanh(√(2/π)(x + 0.044715x³))), as DiT's MLPs. Φ̃ is computed from
// StopGradient(x) with x³ as x·x·x (no Pow) and geluVJP gives the gradient in one expression:
// d/dx = Φ̃ + x·½(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = 2Φ̃ − 1 = tanh(…).
func GELU(x *Node) *Node {
	xs := StopGradient(x)
	u := MulScalar(Add(xs, MulScalar(Mul(Mul(xs, xs), xs), 0.044715)), geluC)
	phi := MulScalar(OnePlus(Tanh(u)), 0.5)
	y := Mul(x, phi)
	if y.Type() == NodeTypeMul && y.Inputs()[0] == x && y.Inputs()[1] == phi {
		graphMap[NodeId, bool](x.Graph(), geluKey{})[y.Id()] = true
	}
	return y
}

// geluVJP is GELU's gradient (see GELU); node = x·Φ̃.
func geluVJP(node *Node, v *Node) []*Node {
	x, phi := node.Inputs()[0], node.Inputs()[1]
	t := AddScalar(MulScalar(phi, 2), -1)
	slope := MulScalar(Mul(OneMinus(Mul(t, t)), AddScalar(MulScalar(Mul(x, x), 3*0.044715), 1)), 0.5*geluC)
	return []*Node{Mul(v, Add(phi, Mul(x, slope))), nil}
}

// siluVJP is SiLU's gradient in one expression of the forward's σ and y = x·σ:
// dy/dx = σ + x·σ·(1 − σ) = σ + y·(1 − σ). σ was computed from StopGradient(x), so nothing flows
// through the sigmoid: two fewer passes over the activation than differentiating x·σ(x).
func siluVJP(node *Node, v *Node) []*Node {
	sig := node.Inputs()[1]
	return []*Node{Mul(v, Add(sig, Mul(node, OneMinus(sig)))), nil}
}

// GroupNorm normalizes a channels-first x: [C, B, H, W] over (C/groups, H, W) per example and
// group (Wu & He, arXiv 1803.08494), then applies a per-channel gain and bias; same shape out.
//
// The statistics come from E[x] and E[x²] (two reductions of the big tensor) and gain, bias,
// mean and 1/std are folded into one per-(channel, example) scale and shift, so the big tensor is
// touched by one multiply-add: y = x·scale + shift.
//
// Gradient: the statistics are computed from StopGradient(x), so autodiff gives the gain and bias
// gradients and the direct term dy·scale; groupNormVJP (registered on the multiply) adds the terms
// through the mean and variance in closed form, per group of M = (C/groups)·H·W elements,
//
//	dx = inv·(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)),  x̂ = (x − μ)·inv,
//
// as dx = dy·scale + x·α + β with per-(group, example) α, β: fewer passes over the big tensor
// than differentiating the reductions.
func (b *Builder) GroupNorm(scope *model.Scope, x *Node, groups int) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	if c%groups != 0 {
		exceptions.Panicf("GroupNorm: %d channels not divisible by %d groups", c, groups)
	}
	cg := c / groups
	xg := Reshape(x, groups, cg, bsz, h*w)
	xs := StopGradient(xg)
	mean := ReduceMean(xs, 1, 3)                                              // [G, B]
	variance := MaxScalar(Sub(ReduceMean(Square(xs), 1, 3), Square(mean)), 0) // [G, B]
	inv := Div(OnesLike(variance), Sqrt(AddScalar(variance, 1e-5)))
	gain := Reshape(b.Param(scope, g, "gain", InitOnes, 0, c), groups, cg, 1)
	bias := Reshape(b.Param(scope, g, "bias", InitZeros, 0, c), groups, cg, 1)
	scale := Mul(gain, ExpandAxes(inv, 1))              // [G, Cg, B]
	shift := Sub(bias, Mul(ExpandAxes(mean, 1), scale)) // [G, Cg, B]
	prod := Mul(xg, ExpandAxes(scale, -1))
	if prod.Type() == NodeTypeMul && prod.Inputs()[0] == xg {
		graphMap[NodeId, groupNormStats](g, groupNormKey{})[prod.Id()] = groupNormStats{
			gain: gain, mean: mean, inv: inv, m: float64(cg * h * w)}
	}
	y := Add(prod, ExpandAxes(shift, -1))
	return Reshape(y, c, bsz, h, w)
}

// groupNormKey holds, in graph state, the groupNormStats of each GroupNorm's x·scale node.
type groupNormKey struct{}

// groupNormStats are what groupNormVJP needs: gain [G, Cg, 1], mean and inv = 1/std [G, B], and
// the group size M.
type groupNormStats struct {
	gain, mean, inv *Node
	m               float64
}

// groupNormVJP is the gradient of a GroupNorm's x·scale multiply (x: [G, Cg, B, HW], scale:
// [G, Cg, B, 1] or broadcast to x): the plain product rule plus, for x, the mean and variance terms x·α + β with
//
//	T1 = Σ γ·dy,  T2 = Σ γ·dy·x̂ = inv·(Σ γ·dy·x − μ·T1)   (sums over the group's Cg·HW elements)
//	α = −inv²·T2/M,  β = (μ·inv²·T2 − inv·T1)/M.
func groupNormVJP(node *Node, st groupNormStats, v *Node) []*Node {
	xg, scale := node.Inputs()[0], node.Inputs()[1]
	d := xg.Shape().Dimensions
	dyx := Mul(v, xg)
	dyxSum := ReduceSum(dyx, 3)                       // [G, Cg, B]
	t1 := ReduceSum(Mul(st.gain, ReduceSum(v, 3)), 1) // [G, B]
	p := ReduceSum(Mul(st.gain, dyxSum), 1)           // [G, B]
	t2 := Mul(st.inv, Sub(p, Mul(st.mean, t1)))
	inv2 := Square(st.inv)
	alpha := MulScalar(Mul(inv2, t2), -1/st.m)
	beta := MulScalar(Sub(Mul(Mul(st.mean, inv2), t2), Mul(st.inv, t1)), 1/st.m)
	expand := func(t *Node) *Node { return Reshape(t, d[0], 1, d[2], 1) }
	dx := Add(Add(Mul(v, scale), Mul(xg, expand(alpha))), expand(beta))
	dScale := dyx
	if !scale.Shape().Equal(xg.Shape()) { // scale: [G, Cg, B, 1], broadcast by the multiply
		dScale = Reshape(dyxSum, scale.Shape().Dimensions...)
	}
	return []*Node{dx, dScale}
}

// mulVJP is the gradient of Mul nodes: closed forms for those built by GroupNorm and SiLU,
// GoMLX's own for the others.
func mulVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	g := node.Graph()
	if st, ok := graphMap[NodeId, groupNormStats](g, groupNormKey{})[node.Id()]; ok {
		return groupNormVJP(node, st, vjps[0])
	}
	if graphMap[NodeId, bool](g, siluKey{})[node.Id()] {
		return siluVJP(node, vjps[0])
	}
	if graphMap[NodeId, bool](g, geluKey{})[node.Id()] {
		return geluVJP(node, vjps[0])
	}
	return originalMulVJP(node, vjps, outShape)
}

var originalMulVJP = VJPRegistration[NodeTypeMul]

func init() {
	VJPRegistration[NodeTypeMul] = mulVJP
}

// Upsample2x repeats every pixel 2×2 (nearest neighbour). x: [C, B, H, W] → [C, B, 2H, 2W].
// On ONNX Runtime, whose Expand copies element by element when the innermost axis is broadcast,
// it runs as spreadRows (the same values).
func Upsample2x(x *Node) *Node {
	if backendKind(x.Graph()) == backendONNX {
		return spreadRows(x, 2, false)
	}
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	y := Reshape(x, c, bsz, h, 1, w, 1)
	y = BroadcastToDims(y, c, bsz, h, 2, w, 2)
	return Reshape(y, c, bsz, 2*h, 2*w)
}

// spreadRows puts x: [C, B, H, W] on a grid s times finer: [C, B, s·H, s·W] with each value
// repeated s×s (repeat) or placed at [s·i, s·j] with zeros elsewhere. Columns are spread by one
// matmul with a constant 0/1 matrix [W, s·W] (exact: one nonzero term per output), rows by
// broadcasting or padding whole rows, so every copy moves contiguous blocks.
func spreadRows(x *Node, s int, zeros bool) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	phases := []int{0} // zeros: column j → s·j; repeat: → s·j, …, s·j + s − 1
	if !zeros {
		phases = make([]int, s)
		for t := range s {
			phases[t] = t
		}
	}
	y := DotGeneral(Reshape(x, c*bsz*h, w), []int{1}, nil, spreadMatrix(g, x.DType(), w, s, phases...), []int{0}, nil) // [C·B·H, s·W]
	y = Reshape(y, c*bsz*h, 1, s*w)
	if zeros {
		y = Pad(y, ScalarZero(g, x.DType()), compute.PadAxis{}, compute.PadAxis{End: s - 1}, compute.PadAxis{})
	} else {
		y = BroadcastToDims(y, c*bsz*h, s, s*w)
	}
	return Reshape(y, c, bsz, s*h, s*w)
}

// spreadMatrix is the constant 0/1 matrix [w, s·w] with ones at (j, s·j + p) for each p in
// phases: x·M moves column j of x to columns s·j + p (exact: one nonzero term per output).
func spreadMatrix(g *Graph, dt dtypes.DType, w, s int, phases ...int) *Node {
	m := make([]float32, w*s*w)
	for j := range w {
		for _, p := range phases {
			m[j*s*w+s*j+p] = 1
		}
	}
	return ConvertDType(Const(g, tensors.FromFlatDataAndDimensions(m, w, s*w)), dt)
}

// DenseCF is the channels-first dense layer: x: [in, M] → W'·x + b: [out, M], with the same
// variables as Dense (weight [in, out], bias [out]).
func (b *Builder) DenseCF(scope *model.Scope, x *Node, out int, init Init) *Node {
	g := x.Graph()
	in, m := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	w := b.loraWeight(scope, b.Param(scope, g, "weight", init, 1, in, out))
	bias := b.Param(scope, g, "bias", InitZeros, 0, out)
	b.FLOPs += 2 * int64(m) * int64(in) * int64(out)
	return Add(MatMulCF(Transpose(w, 0, 1), x), ExpandAxes(bias, 1))
}

// SelfAttention is GroupNorm → 1×1 qkv projection → multi-head softmax(QKᵀ/√d)·V over the H·W
// tokens → 1×1 output projection (zero-initialized) → residual add (Vaswani et al. 2017, as used
// in the DDPM U-Net). x: [C, B, H, W] (channels-first) → same shape; heads must divide C.
func (b *Builder) SelfAttention(scope *model.Scope, x *Node, heads, groups int) *Node {
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	if c%heads != 0 {
		exceptions.Panicf("SelfAttention: %d channels not divisible by %d heads", c, heads)
	}
	d, s := c/heads, h*w
	hn := Reshape(b.GroupNorm(scope.In("norm"), x, groups), c, bsz*s)
	qkv := Reshape(b.DenseCF(scope.In("qkv"), hn, 3*c, InitFanIn), 3, heads, d, bsz, s)
	// [3, heads, d, B, S] → [3, B, heads, S, d] so q, k, v are contiguous [B·heads, S, d] blocks.
	qkv = TransposeAllAxes(qkv, 0, 3, 1, 4, 2)
	q := Reshape(SliceAxisFast(qkv, 0, 0, 1), bsz*heads, s, d)
	k := Reshape(SliceAxisFast(qkv, 0, 1, 2), bsz*heads, s, d)
	v := Reshape(SliceAxisFast(qkv, 0, 2, 3), bsz*heads, s, d)
	b.FLOPs += 4 * int64(bsz*heads) * int64(s) * int64(s) * int64(d)
	// Plain batched matmuls: the backend's fused attention kernel is slow for short sequences.
	scores := MulScalar(DotGeneral(q, []int{2}, []int{0}, k, []int{2}, []int{0}), 1/math.Sqrt(float64(d))) // [B·heads, S, S]
	att := DotGeneral(Softmax(scores, -1), []int{2}, []int{0}, v, []int{1}, []int{0})                      // [B·heads, S, d]
	att = TransposeAllAxes(Reshape(att, bsz, heads, s, d), 1, 3, 0, 2)                                     // [heads, d, B, S]
	out := b.DenseCF(scope.In("proj"), Reshape(att, c, bsz*s), c, InitZeros)
	return Add(x, Reshape(out, c, bsz, h, w))
}
