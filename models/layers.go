package models

import (
	"math"
	"strings"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/nn"
	"github.com/gomlx/gomlx/support/exceptions"
)

// ConvImpl selects how 2D convolutions are built.
type ConvImpl string

const (
	// ConvAuto uses im2col on the pure-Go backend and the native convolution elsewhere (XLA).
	ConvAuto ConvImpl = "auto"
	// ConvIm2Col builds a conv as shifted slices concatenated on the channel axis and one matmul.
	// On the pure-Go backend its gradient is ~29× faster than the library conv (gomlx-notes).
	ConvIm2Col ConvImpl = "im2col"
	// ConvNative uses graph.Convolve (the backend's conv op).
	ConvNative ConvImpl = "native"
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

// matmulBias is x·w + b over the last axis of x with a plain DotGeneral (whose gradients the
// pure-Go backend runs without the explicit transposes of its fused-dense VJP).
// x: [..., K], w: [K, N], b: [N] → [..., N].
func matmulBias(x, w, b *Node) *Node {
	dims := x.Shape().Dimensions
	k, n := w.Shape().Dimensions[0], w.Shape().Dimensions[1]
	y := MatMul2D(Reshape(x, -1, k), w)
	outDims := append(append([]int{}, dims[:len(dims)-1]...), n)
	return Add(Reshape(y, outDims...), ExpandLeftToRank(b, len(outDims)))
}

// SiLU is x·sigmoid(x) (the "swish" of Ramachandran et al.).
func SiLU(x *Node) *Node { return activation.Swish(x) }

// Conv2D is a k×k convolution with "same" padding (k odd) and stride 1 or 2.
// x: [B, H, W, Cin] → [B, H/stride, W/stride, out]; kernel variable: [k, k, Cin, out] (HWIO), bias: [out].
func (b *Builder) Conv2D(scope *model.Scope, x *Node, out, k, stride int, impl ConvImpl, init Init) *Node {
	if k%2 != 1 {
		// The library's conv input gradient is wrong for even kernels (gomlx-notes trap 1).
		exceptions.Panicf("Conv2D: kernel size %d must be odd", k)
	}
	if stride != 1 && stride != 2 {
		exceptions.Panicf("Conv2D: stride %d not supported (1 or 2)", stride)
	}
	s := scope
	g := x.Graph()
	dims := x.Shape().Dimensions
	bsz, h, w, cin := dims[0], dims[1], dims[2], dims[3]
	if stride == 2 && (h%2 != 0 || w%2 != 0) {
		exceptions.Panicf("Conv2D: stride 2 needs even spatial sizes, got %dx%d", h, w)
	}
	kernel := b.Param(s, g, "kernel", init, 1, k, k, cin, out)
	bias := b.Param(s, g, "bias", InitZeros, 0, out)
	b.FLOPs += 2 * int64(bsz*(h/stride)*(w/stride)) * int64(k*k*cin) * int64(out)
	if k == 1 && stride == 1 {
		return matmulBias(x, Reshape(kernel, cin, out), bias)
	}
	if impl == ConvAuto {
		impl = autoConv(g)
	}
	if impl == ConvNative {
		p := k / 2
		y := Convolve(x, kernel).StridePerAxis(stride, stride).PaddingPerDim([][2]int{{p, p}, {p, p}}).Done()
		return Add(y, ExpandLeftToRank(bias, 4))
	}
	return convIm2Col(x, kernel, bias, k, stride)
}

// autoConv picks the native conv on XLA/PJRT backends and im2col elsewhere (the pure-Go backend,
// whose library conv trains ~29× slower).
func autoConv(g *Graph) ConvImpl {
	if backend := g.Backend(); backend != nil {
		name := strings.ToLower(backend.Name())
		if strings.Contains(name, "xla") || strings.Contains(name, "hlo") || strings.Contains(name, "pjrt") {
			return ConvNative
		}
	}
	return ConvIm2Col
}

// convIm2Col is a k×k "same" convolution as one matmul over gathered taps (im2col), built from
// operations the pure-Go backend runs as block copies. x: [B, H, W, C], kernel: [k, k, C, N],
// bias: [N] → [B, H/s, W/s, N].
//
// The input is zero-padded to [B, Hp, Wp, C] and flattened to [B, Hp·Wp, C]; for stride 1, tap
// (dy, dx) of output (i, j) is at flat index (i+dy)·Wp + (j+dx), so all k² taps are contiguous
// crops of length L = (Ho−1)·Wp + Wo at offsets dy·Wp + dx, taken by ONE Gather → [k², B, L, C].
// The matmul runs over all L flat positions (including the Wp−Wo wrap-around columns of each row,
// ~6% extra work at 32×32), and the wrap-around columns are cropped from the [B, Ho, Wp, N] output.
// Stride 2 first reorders the padded input by row/column parity ("space-to-depth", a reshape and
// one transpose) into [B, 4, (Hp/2)·(Wp/2), C], where every tap is again one contiguous crop.
func convIm2Col(x, kernel, bias *Node, k, stride int) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	bsz, h, w, c := dims[0], dims[1], dims[2], dims[3]
	n := kernel.Shape().Dimensions[3]
	p := k / 2
	ho, wo := h/stride, w/stride
	padEnd := p
	if stride == 2 && (h+2*p)%2 != 0 {
		padEnd = p + 1 // keep the padded sides even for the parity split
	}
	hp, wp := h+p+padEnd, w+p+padEnd
	xp := PadSigned(x, compute.PadAxis{}, compute.PadAxis{Start: p, End: padEnd}, compute.PadAxis{Start: p, End: padEnd}, compute.PadAxis{})
	var taps *Node // [k², B, ..., L, C]
	rowLen := wp   // flat row length of the tap source
	if stride == 1 {
		flat := Reshape(xp, bsz, hp*wp, c)
		starts := make([][]int32, 0, k*k)
		for dy := range k {
			for dx := range k {
				starts = append(starts, []int32{int32(dy*wp + dx)})
			}
		}
		l := (ho-1)*wp + wo
		taps = GatherSlices(flat, []int{1}, Const(g, starts), []int{l}, true) // [k², B, L, C]
	} else {
		rowLen = wp / 2
		par := Reshape(xp, bsz, hp/2, 2, wp/2, 2, c)
		par = TransposeAllAxes(par, 0, 2, 4, 1, 3, 5) // [B, 2, 2, Hp/2, Wp/2, C]
		flat := Reshape(par, bsz, 4, (hp/2)*(wp/2), c)
		starts := make([][]int32, 0, k*k)
		for dy := range k {
			for dx := range k {
				starts = append(starts, []int32{int32((dy%2)*2 + dx%2), int32((dy/2)*rowLen + dx/2)})
			}
		}
		l := (ho-1)*rowLen + wo
		taps = GatherSlices(flat, []int{1, 2}, Const(g, starts), []int{1, l}, true) // [k², B, 1, L, C]
	}
	l := (ho-1)*rowLen + wo
	cols := Transpose(Reshape(taps, k*k, bsz*l, c), 0, 1) // [B·L, k², C]
	y := MatMul2D(Reshape(cols, bsz*l, k*k*c), Reshape(kernel, k*k*c, n))
	y = Add(y, ExpandLeftToRank(bias, 2))                                                                           // [B·L, N]
	y = PadSigned(Reshape(y, bsz, l, n), compute.PadAxis{}, compute.PadAxis{End: ho*rowLen - l}, compute.PadAxis{}) // [B, Ho·rowLen, N]
	return SliceAxisFast(Reshape(y, bsz, ho, rowLen, n), 2, 0, wo)
}

// GroupNorm normalizes x over (H, W, C/groups) per example and group (Wu & He, arXiv 1803.08494),
// then applies a per-channel gain and bias. x: [B, H, W, C] → same shape.
//
// The statistics come from E[x] and E[x²] (two reductions of the big tensor) and gain, bias,
// mean and 1/std are folded into one per-(example, channel) scale and shift, so the big tensor is
// touched by one multiply and one add: fewer full passes than the textbook form, forward and
// backward.
func (b *Builder) GroupNorm(scope *model.Scope, x *Node, groups int) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	bsz, h, w, c := dims[0], dims[1], dims[2], dims[3]
	if c%groups != 0 {
		exceptions.Panicf("GroupNorm: %d channels not divisible by %d groups", c, groups)
	}
	cg := c / groups
	xg := Reshape(x, bsz, h*w, groups, cg)
	mean := ReduceMean(xg, 1, 3)                                              // [B, G]
	variance := MaxScalar(Sub(ReduceMean(Square(xg), 1, 3), Square(mean)), 0) // [B, G]
	inv := Div(OnesLike(variance), Sqrt(AddScalar(variance, 1e-5)))
	gain := Reshape(b.Param(scope, g, "gain", InitOnes, 0, c), 1, groups, cg)
	bias := Reshape(b.Param(scope, g, "bias", InitZeros, 0, c), 1, groups, cg)
	scale := Mul(gain, ExpandAxes(inv, -1))                       // [B, G, Cg]
	shift := Sub(bias, Mul(ExpandAxes(mean, -1), scale))          // [B, G, Cg]
	y := Add(Mul(xg, ExpandAxes(scale, 1)), ExpandAxes(shift, 1)) // [B, HW, G, Cg]
	return Reshape(y, bsz, h, w, c)
}

// Upsample2x repeats every pixel 2×2 (nearest neighbour). x: [B, H, W, C] → [B, 2H, 2W, C].
func Upsample2x(x *Node) *Node {
	dims := x.Shape().Dimensions
	bsz, h, w, c := dims[0], dims[1], dims[2], dims[3]
	y := Reshape(x, bsz, h, 1, w, 1, c)
	y = BroadcastToDims(y, bsz, h, 2, w, 2, c)
	return Reshape(y, bsz, 2*h, 2*w, c)
}

// SelfAttention is GroupNorm → 1×1 qkv projection → multi-head softmax(QKᵀ/√d)·V over the H·W
// tokens → 1×1 output projection (zero-initialized) → residual add (Vaswani et al. 2017, as used
// in the DDPM U-Net). x: [B, H, W, C] → same shape; heads must divide C.
func (b *Builder) SelfAttention(scope *model.Scope, x *Node, heads, groups int) *Node {
	dims := x.Shape().Dimensions
	bsz, h, w, c := dims[0], dims[1], dims[2], dims[3]
	if c%heads != 0 {
		exceptions.Panicf("SelfAttention: %d channels not divisible by %d heads", c, heads)
	}
	d := c / heads
	hn := b.GroupNorm(scope.In("norm"), x, groups)
	qkv := b.Dense(scope.In("qkv"), Reshape(hn, bsz, h*w, c), 3*c, InitFanIn) // [B, HW, 3C]
	qkv = Reshape(qkv, bsz, h*w, 3, heads, d)
	// [B, HW, 3, heads, d] → [3, B, heads, HW, d] so q, k, v are contiguous [B·heads, HW, d] blocks.
	qkv = TransposeAllAxes(qkv, 2, 0, 3, 1, 4)
	q := Reshape(SliceAxisFast(qkv, 0, 0, 1), bsz*heads, h*w, d)
	k := Reshape(SliceAxisFast(qkv, 0, 1, 2), bsz*heads, h*w, d)
	v := Reshape(SliceAxisFast(qkv, 0, 2, 3), bsz*heads, h*w, d)
	b.FLOPs += 4 * int64(bsz*heads) * int64(h*w) * int64(h*w) * int64(d)
	// Plain batched matmuls: the backend's fused attention kernel is slow for short sequences.
	scores := MulScalar(DotGeneral(q, []int{2}, []int{0}, k, []int{2}, []int{0}), 1/math.Sqrt(float64(d))) // [B·heads, HW, HW]
	att := DotGeneral(Softmax(scores, -1), []int{2}, []int{0}, v, []int{1}, []int{0})                      // [B·heads, HW, d]
	att = TransposeAllAxes(Reshape(att, bsz, heads, h*w, d), 0, 2, 1, 3)                                   // [B, HW, heads, d]
	out := b.Dense(scope.In("proj"), Reshape(att, bsz, h*w, c), c, InitZeros)
	return Add(x, Reshape(out, bsz, h, w, c))
}
