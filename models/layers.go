package models

import (
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/nn"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Dense is y = x·W + b over the last axis. x: [..., in] → [..., out]; W: [in, out], b: [out].
func (b *Builder) Dense(scope *model.Scope, x *Node, out int, init Init) *Node {
	s := scope
	g := x.Graph()
	in := x.Shape().Dimensions[x.Rank()-1]
	w := b.Param(s, g, "weight", init, 1, in, out)
	bias := b.Param(s, g, "bias", InitZeros, 0, out)
	b.FLOPs += 2 * int64(x.Shape().Size()/in) * int64(in) * int64(out)
	return nn.Dense(x, w, bias, compute.DenseLayoutInputOutputs)
}

// SiLU is x·sigmoid(x) (the "swish" of Ramachandran et al.).
func SiLU(x *Node) *Node { return activation.Swish(x) }

// GroupNorm normalizes a channels-first x: [C, B, H, W] over (C/groups, H, W) per example and
// group (Wu & He, arXiv 1803.08494), then applies a per-channel gain and bias; same shape out.
//
// The statistics come from E[x] and E[x²] (two reductions of the big tensor) and gain, bias,
// mean and 1/std are folded into one per-(channel, example) scale and shift, so the big tensor is
// touched by one multiply and one add: fewer full passes than the textbook form, forward and
// backward.
func (b *Builder) GroupNorm(scope *model.Scope, x *Node, groups int) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	if c%groups != 0 {
		exceptions.Panicf("GroupNorm: %d channels not divisible by %d groups", c, groups)
	}
	cg := c / groups
	xg := Reshape(x, groups, cg, bsz, h*w)
	mean := ReduceMean(xg, 1, 3)                                              // [G, B]
	variance := MaxScalar(Sub(ReduceMean(Square(xg), 1, 3), Square(mean)), 0) // [G, B]
	inv := Div(OnesLike(variance), Sqrt(AddScalar(variance, 1e-5)))
	gain := Reshape(b.Param(scope, g, "gain", InitOnes, 0, c), groups, cg, 1)
	bias := Reshape(b.Param(scope, g, "bias", InitZeros, 0, c), groups, cg, 1)
	scale := Mul(gain, ExpandAxes(inv, 1))              // [G, Cg, B]
	shift := Sub(bias, Mul(ExpandAxes(mean, 1), scale)) // [G, Cg, B]
	y := Add(Mul(xg, ExpandAxes(scale, -1)), ExpandAxes(shift, -1))
	return Reshape(y, c, bsz, h, w)
}

// Upsample2x repeats every pixel 2×2 (nearest neighbour). x: [C, B, H, W] → [C, B, 2H, 2W].
func Upsample2x(x *Node) *Node {
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	y := Reshape(x, c, bsz, h, 1, w, 1)
	y = BroadcastToDims(y, c, bsz, h, 2, w, 2)
	return Reshape(y, c, bsz, 2*h, 2*w)
}

// DenseCF is the channels-first dense layer: x: [in, M] → W'·x + b: [out, M], with the same
// variables as Dense (weight [in, out], bias [out]).
func (b *Builder) DenseCF(scope *model.Scope, x *Node, out int, init Init) *Node {
	g := x.Graph()
	in, m := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	w := b.Param(scope, g, "weight", init, 1, in, out)
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
