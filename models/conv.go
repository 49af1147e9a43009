package models

import (
	"strings"

	"github.com/gomlx/compute/shapes"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// ConvImpl selects how 2D convolutions are built.
type ConvImpl string

const (
	// ConvAuto uses im2col on the pure-Go backend and the native convolution elsewhere (XLA).
	ConvAuto ConvImpl = "auto"
	// ConvIm2Col builds a conv as one gather of the k² taps and one matmul (see convIm2Col).
	// On the pure-Go backend its gradient is far faster than the library conv (gomlx-notes).
	ConvIm2Col ConvImpl = "im2col"
	// ConvNative uses graph.Convolve (the backend's conv op).
	ConvNative ConvImpl = "native"
)

// Conv2D is a k×k convolution with "same" padding (k odd) and stride 1 or 2 on channels-first
// activations. x: [Cin, B, H, W] → [out, B, H/stride, W/stride]; kernel variable: [k, k, Cin, out]
// (HWIO), bias: [out].
func (b *Builder) Conv2D(scope *model.Scope, x *Node, out, k, stride int, impl ConvImpl, init Init) *Node {
	if k%2 != 1 {
		// The library's conv input gradient is wrong for even kernels (gomlx-notes trap 1).
		exceptions.Panicf("Conv2D: kernel size %d must be odd", k)
	}
	if stride != 1 && stride != 2 {
		exceptions.Panicf("Conv2D: stride %d not supported (1 or 2)", stride)
	}
	g := x.Graph()
	dims := x.Shape().Dimensions
	cin, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	if stride == 2 && (h%2 != 0 || w%2 != 0) {
		exceptions.Panicf("Conv2D: stride 2 needs even spatial sizes, got %dx%d", h, w)
	}
	kernel := b.loraWeight(scope, b.Param(scope, g, "kernel", init, 1, k, k, cin, out))
	bias := b.Param(scope, g, "bias", InitZeros, 0, out)
	b.FLOPs += 2 * int64(bsz*(h/stride)*(w/stride)) * int64(k*k*cin) * int64(out)
	if k == 1 && stride == 1 {
		y := MatMulCF(Transpose(Reshape(kernel, cin, out), 0, 1), Reshape(x, cin, bsz*h*w))
		return Reshape(Add(y, ExpandAxes(bias, 1)), out, bsz, h, w)
	}
	if impl == ConvAuto {
		impl = autoConv(g)
	}
	if impl == ConvNative {
		return convNative(x, kernel, bias, k, stride)
	}
	return convIm2Col(x, kernel, bias, k, stride)
}

// convNative is the backend's convolution on channels-first x: [C, B, H, W] → [N, B, H/s, W/s].
func convNative(x, kernel, bias *Node, k, stride int) *Node {
	p := k / 2
	y := convNativePads(x, kernel, stride, [2][2]int{{p, p}, {p, p}})
	return Add(y, Reshape(bias, kernel.Shape().Dimensions[3], 1, 1, 1))
}

// convNativePads is the backend's convolution (no bias) of channels-first x: [C, B, H, W] with
// kernel [kh, kw, C, N], stride s and paddings pads = {{top, bottom}, {left, right}}. On ONNX
// Runtime, whose Conv lacks the input dilation of GoMLX's strided-conv gradient (gomlx-notes), the
// node is marked for convNativeVJP, which builds its gradient from plain Convs and GEMMs.
func convNativePads(x, kernel *Node, stride int, pads [2][2]int) *Node {
	y := Convolve(x, kernel).AxesConfig(cfAxes).StridePerAxis(stride, stride).PaddingPerDim([][2]int{pads[0], pads[1]}).Done()
	if backendKind(x.Graph()) == backendONNX && y.Type() == NodeTypeConvGeneral {
		graphMap[NodeId, nativeConv](y.Graph(), nativeConvsKey{})[y.Id()] = nativeConv{stride: stride, pads: pads}
	}
	return y
}

// Backend kinds that change how fewstep builds graphs.
const (
	backendGo   = "go"
	backendXLA  = "xla"
	backendONNX = "onnx"
)

// backendKind classifies the graph's backend by name ("Go Backend", "xla", "ONNX Runtime …").
func backendKind(g *Graph) string {
	if backend := g.Backend(); backend != nil {
		name := strings.ToLower(backend.Name())
		switch {
		case strings.Contains(name, "xla") || strings.Contains(name, "hlo") || strings.Contains(name, "pjrt"):
			return backendXLA
		case strings.Contains(name, "onnx"):
			return backendONNX
		}
	}
	return backendGo
}

// autoConv picks im2col on the pure-Go backend (whose library conv trains ~29× slower) and the
// native conv on XLA/PJRT and ONNX Runtime.
func autoConv(g *Graph) ConvImpl {
	if backendKind(g) == backendGo {
		return ConvIm2Col
	}
	return ConvNative
}

// convIm2Col is a k×k "same" convolution as one gather of the k² taps and one matmul, on
// channels-first activations, built from operations the pure-Go backend runs as block copies.
// x: [C, B, H, W], kernel: [k, k, C, N], bias: [N] → [N, B, H/s, W/s].
//
// The input is zero-padded to [C, B, Hp, Wp] and flattened to [C, B·Hp·Wp]. For stride 1, tap
// (dy, dx) of the output at flat position q = (b, i, j) of the padded frame is at q + dy·Wp + dx,
// so each tap is one contiguous crop of every channel row, and ONE Gather yields [k², C, R] =
// [K, R]: already the GEMM's [K, M] operand, with no interleaving copy. The matmul runs over all R
// flat positions (including the padding frame, ~13% extra work at 32×32); the valid [H, W]
// window is cropped from the [N, B, Hp, Wp] output. Stride 2 first reorders the padded input by
// row/column parity ("space-to-depth": one reshape and one transpose) into [C, 4, B·(Hp/2)·(Wp/2)],
// where every tap is again one contiguous crop of a parity plane.
func convIm2Col(x, kernel, bias *Node, k, stride int) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	n := kernel.Shape().Dimensions[3]
	p := k / 2
	ho, wo := h/stride, w/stride
	padEnd := p
	if stride == 2 && (h+2*p)%2 != 0 {
		padEnd = p + 1 // keep the padded sides even for the parity split
	}
	hp, wp := h+p+padEnd, w+p+padEnd
	xp := PadSigned(x, compute.PadAxis{}, compute.PadAxis{}, compute.PadAxis{Start: p, End: padEnd}, compute.PadAxis{Start: p, End: padEnd})
	var cols, y *Node
	fh, fw := hp, wp // the frame (per example) of the output positions
	if stride == 1 {
		flat := Reshape(xp, c, bsz*hp*wp)
		starts := make([][]int32, 0, k*k)
		for dy := range k {
			for dx := range k {
				starts = append(starts, []int32{int32(dy*wp + dx)})
			}
		}
		r := bsz*hp*wp - ((k-1)*wp + k - 1)
		cols = GatherSlices(flat, []int{1}, Const(g, starts), []int{r}, true) // [k², C, R]
		taps := &convTaps{k: k, wp: wp, c: c, r: r, rFull: bsz * hp * wp}
		defer func() { taps.link(cols, y) }()
	} else {
		fh, fw = hp/2, wp/2
		par := Reshape(xp, c, bsz, fh, 2, fw, 2)
		par = TransposeAllAxes(par, 0, 3, 5, 1, 2, 4) // [C, 2, 2, B, Hp/2, Wp/2]
		flat := Reshape(par, c, 4, bsz*fh*fw)
		starts := make([][]int32, 0, k*k)
		for dy := range k {
			for dx := range k {
				starts = append(starts, []int32{int32((dy%2)*2 + dx%2), int32((dy/2)*fw + dx/2)})
			}
		}
		r := bsz*fh*fw - ((k-1)/2*fw + (k-1)/2)
		cols = GatherSlices(flat, []int{1, 2}, Const(g, starts), []int{1, r}, true) // [k², C, 1, R]
	}
	r := cols.Shape().Size() / (k * k * c)
	w2 := Transpose(Reshape(kernel, k*k*c, n), 0, 1) // [N, K]
	y = MatMulCF(w2, Reshape(cols, k*k*c, r))        // [N, R]
	out := Add(y, ExpandAxes(bias, 1))
	out = PadSigned(out, compute.PadAxis{}, compute.PadAxis{End: bsz*fh*fw - r}) // [N, B·fh·fw]
	out = Reshape(out, n, bsz, fh, fw)
	return SliceAxisFast(SliceAxisFast(out, 2, 0, ho), 3, 0, wo)
}

// convTapsKey holds, in graph state, the *convTaps of each stride-1 im2col conv, keyed by the
// node ids of both its tap Gather and its GEMM.
type convTapsKey struct{}

// convTaps links the tap Gather and the GEMM of a stride-1 im2col conv so that the input gradient
// is computed as a transposed convolution of dy — a Gather of k² shifted copies of the N-wide dy
// and one GEMM with K = k²·N producing the C-wide gradient directly — instead of materializing the
// k²·C-wide column gradient Wᵀ·dy and scatter-adding it back (col2im).
type convTaps struct {
	k, wp, c, r, rFull int
	w, dy              *Node // the GEMM's [N, K] weights and its adjoint [N, R], set by its gradient
}

// link registers the taps under the Gather (cols) and GEMM (y) node ids.
func (t *convTaps) link(cols, y *Node) {
	m := graphMap[NodeId, *convTaps](y.Graph(), convTapsKey{})
	m[cols.Id()], m[y.Id()] = t, t
}

// inputGradient is dL/d(flat padded input) [C, rFull] = Σ_taps W_tᵀ·shift_t(dy), computed as one
// GEMM [C, k²·N] × [k²·N, rFull] over the taps of dy padded by the largest offset on both sides.
func (t *convTaps) inputGradient() *Node {
	g := t.dy.Graph()
	n, k2 := t.dy.Shape().Dimensions[0], t.k*t.k
	maxOff := (t.k-1)*t.wp + t.k - 1
	dyP := PadSigned(t.dy, compute.PadAxis{}, compute.PadAxis{Start: maxOff, End: t.rFull - t.r}) // [N, maxOff + rFull]
	starts := make([][]int32, 0, k2)
	for dy := range t.k {
		for dx := range t.k {
			starts = append(starts, []int32{int32(maxOff - (dy*t.wp + dx))})
		}
	}
	shifted := GatherSlices(dyP, []int{1}, Const(g, starts), []int{t.rFull}, true) // [k², N, rFull]
	wc := Reshape(TransposeAllAxes(Reshape(t.w, n, k2, t.c), 2, 1, 0), t.c, k2*n)  // [C, k²·N]
	return DotGeneral(wc, []int{1}, nil, Reshape(shifted, k2*n, t.rFull), []int{0}, nil)
}

// nativeConvsKey marks, in graph state, the ConvGeneral nodes whose gradient convNativeVJP
// builds, with their nativeConv.
type nativeConvsKey struct{}

// nativeConv is the stride and the {{top, bottom}, {left, right}} paddings of a marked conv.
type nativeConv struct {
	stride int
	pads   [2][2]int
}

// convNativeVJP is the gradient of a channels-first ConvGeneral of stride s (1, or 2 with "same"
// paddings) whose output keeps the input's size (/s), on ONNX Runtime:
//   - dx = conv(up_s(dy), W') with W'[ky, kx, n, c] = W[kh−1−ky, kw−1−kx, c, n] and paddings
//     (kh−1−top, kh−1−bottom), (kw−1−left, kw−1−right), where up_s puts dy on the stride-s grid
//     with zeros between: a native Conv;
//   - dW = kernelGradient(x, up_s(dy)): GEMMs over contiguous crops.
//
// x: [C, B, H, W], kernel: [kh, kw, C, N], dy: [N, B, H/s, W/s].
func convNativeVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	nc, ok := graphMap[NodeId, nativeConv](node.Graph(), nativeConvsKey{})[node.Id()]
	if !ok {
		return originalConvVJP(node, vjps, outShape)
	}
	x, kernel, dy := node.Inputs()[0], node.Inputs()[1], vjps[0]
	kh, kw := kernel.Shape().Dimensions[0], kernel.Shape().Dimensions[1]
	dyUp := zeroUpsample(dy, nc.stride)
	flipped := Transpose(Reverse(kernel, 0, 1), 2, 3) // [kh, kw, N, C]
	dx := Convolve(dyUp, flipped).AxesConfig(cfAxes).PaddingPerDim([][2]int{
		{kh - 1 - nc.pads[0][0], kh - 1 - nc.pads[0][1]}, {kw - 1 - nc.pads[1][0], kw - 1 - nc.pads[1][1]}}).Done()
	return []*Node{dx, kernelGradient(x, dyUp, kh, kw, nc.pads)}
}

// kernelGradient is dL/dW [kh, kw, C, N] of a stride-1 conv with paddings pads whose output has
// the input's size, for x: [C, B, H, W] and dy: [N, B, H, W]:
//
//	dW[ky, kx] = Σ_q x_pad[:, q + ky·Wp + kx]·dy_f[:, q]ᵀ
//
// over the flat positions q of the padded frame [B, Hp, Wp] (dy_f: dy in that frame, zero outside
// [H, W]). Shifted operands are contiguous crops of the flattened tensors, and each tap is one
// GEMM [C, L]×[L, N]: no kh·kw-fold column matrix is built. Two crop plans, whichever copies less:
//   - per tap, crop the narrower operand (kh·kw·min(C, N) rows copied);
//   - per row ky crop x at ky·Wp, per column kx crop dy at −kx (kh·C + kw·N rows copied), using
//     Σ_q x[q + ky·Wp + kx]·dy[q] = Σ_q' x[q' + ky·Wp]·dy[q' − kx].
func kernelGradient(x, dy *Node, kh, kw int, pads [2][2]int) *Node {
	xd := x.Shape().Dimensions
	c, bsz, h, w := xd[0], xd[1], xd[2], xd[3]
	n := dy.Shape().Dimensions[0]
	hp, wp := h+pads[0][0]+pads[0][1], w+pads[1][0]+pads[1][1]
	rFull := bsz * hp * wp
	maxOff := (kh-1)*wp + kw - 1
	r := rFull - maxOff // q ∈ [0, r) covers every position where dy_f is nonzero
	xf := Reshape(PadSigned(x, compute.PadAxis{}, compute.PadAxis{},
		compute.PadAxis{Start: pads[0][0], End: pads[0][1]}, compute.PadAxis{Start: pads[1][0], End: pads[1][1]}), c, rFull)
	dyFrame := func(left int) *Node { // dy in the frame [B, Hp, Wp], shifted right by left: [N, rFull]
		return Reshape(PadSigned(dy, compute.PadAxis{}, compute.PadAxis{}, compute.PadAxis{End: hp - h},
			compute.PadAxis{Start: left, End: wp - w - left}), n, rFull)
	}
	crop := func(t *Node, from, length int) *Node { return Slice(t, AxisRange(), AxisRange(from, from+length)) }
	gemm := func(xs, dys *Node) *Node { return DotGeneral(xs, []int{1}, nil, dys, []int{1}, nil) } // [C, N]
	taps := make([]*Node, 0, kh*kw)
	switch {
	case kh*c+kw*n < kh*kw*min(c, n) && kh > 1:
		// dy shifted right by kw−1: in the frame, padded left by kw−1 columns instead of right
		// (wp − w = kw − 1 for a "same" conv), so the shift costs no extra copy.
		l := r + kw - 1
		var dyP *Node
		if wp-w >= kw-1 {
			dyP = dyFrame(kw - 1)
		} else {
			dyP = PadSigned(dyFrame(0), compute.PadAxis{}, compute.PadAxis{Start: kw - 1})
		}
		xs, dys := make([]*Node, kh), make([]*Node, kw)
		for ky := range kh {
			xs[ky] = crop(xf, ky*wp, l)
		}
		for kx := range kw {
			dys[kx] = crop(dyP, kw-1-kx, l)
		}
		for ky := range kh {
			for kx := range kw {
				taps = append(taps, gemm(xs[ky], dys[kx]))
			}
		}
	case c <= n: // x_pad[:, q + o] with dy_f[:, q], q ∈ [0, r)
		dys := crop(dyFrame(0), 0, r)
		for ky := range kh {
			for kx := range kw {
				taps = append(taps, gemm(crop(xf, ky*wp+kx, r), dys))
			}
		}
	default: // x_pad[:, q'] with dy_f[:, q' − o], q' ∈ [0, rFull)
		dyP := PadSigned(dyFrame(0), compute.PadAxis{}, compute.PadAxis{Start: maxOff})
		for ky := range kh {
			for kx := range kw {
				taps = append(taps, gemm(xf, crop(dyP, maxOff-(ky*wp+kx), rFull)))
			}
		}
	}
	return Reshape(Concatenate(taps, 0), kh, kw, c, n)
}

// zeroUpsample places y: [N, B, h, w] on a grid s times finer, zeros elsewhere: [N, B, s·h, s·w]
// with out[.., s·i, s·j] = y[.., i, j].
func zeroUpsample(y *Node, s int) *Node {
	if s == 1 {
		return y
	}
	return spreadRows(y, s, true)
}

// cfAxes is the ConvGeneral axes layout of channels-first activations [C, B, H, W] with HWIO kernels.
var cfAxes = ConvolveAxesConfig{
	InputBatch: 1, InputChannels: 0, InputSpatial: []int{2, 3},
	KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
	OutputBatch: 1, OutputChannels: 0, OutputSpatial: []int{2, 3},
}

var originalConvVJP = VJPRegistration[NodeTypeConvGeneral]

func init() {
	VJPRegistration[NodeTypeConvGeneral] = convNativeVJP
}

// UpsampleConv2D is Conv2D(Upsample2x(x)) with a 3×3 kernel: nearest-neighbour 2× upsampling then
// a "same" stride-1 conv, x: [Cin, B, H, W] → [out, B, 2H, 2W], with Conv2D's variables (kernel
// [3, 3, Cin, out], bias [out]).
//
// On ONNX Runtime it runs in the sub-pixel form: output pixel (2i+a, 2j+b) only sees input rows
// i−1..i (a = 0) or i..i+1 (a = 1), and likewise columns, because upsampled rows 2i−1, 2i, 2i+1
// come from input rows i−1, i, i. So each of the four output phases (a, b) is a 2×2 conv of the
// low-resolution x with summed taps K_ab = A_a·W·A_bᵀ, A_0 = [[1,0,0],[0,1,1]],
// A_1 = [[1,1,0],[0,0,1]], and the phases are interleaved into the output. Same function and
// parameters, 16 instead of 36 multiply-adds per output pixel and input channel.
func (b *Builder) UpsampleConv2D(scope *model.Scope, x *Node, out int, impl ConvImpl, init Init) *Node {
	g := x.Graph()
	if impl == ConvAuto {
		impl = autoConv(g)
	}
	if impl != ConvNative || backendKind(g) != backendONNX {
		return b.Conv2D(scope, Upsample2x(x), out, 3, 1, impl, init)
	}
	dims := x.Shape().Dimensions
	cin, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	kernel := b.loraWeight(scope, b.Param(scope, g, "kernel", init, 1, 3, 3, cin, out))
	bias := b.Param(scope, g, "bias", InitZeros, 0, out)
	b.FLOPs += 2 * int64(bsz*2*h*2*w) * int64(9*cin) * int64(out)   // the architecture's count
	combine := [2][]float32{{1, 0, 0, 0, 1, 1}, {1, 1, 0, 0, 0, 1}} // A_a: [2, 3]
	padsOf := [2][2]int{{1, 0}, {0, 1}}                             // rows i−1..i or i..i+1
	var phases [2][2]*Node
	for a := range 2 {
		aa := ConvertDType(Const(g, tensors.FromFlatDataAndDimensions(combine[a], 2, 3)), kernel.DType())
		ka := DotGeneral(aa, []int{1}, nil, kernel, []int{0}, nil) // [2, 3(kx), Cin, N]
		for bb := range 2 {
			ab := ConvertDType(Const(g, tensors.FromFlatDataAndDimensions(combine[bb], 2, 3)), kernel.DType())
			kab := DotGeneral(ab, []int{1}, nil, ka, []int{1}, nil) // [2(s), 2(r), Cin, N]
			kab = TransposeAllAxes(kab, 1, 0, 2, 3)                 // [2, 2, Cin, N]
			phases[a][bb] = convNativePads(x, kab, 1, [2][2]int{padsOf[a], padsOf[bb]})
		}
	}
	y := interleavePhases(phases)
	return Add(y, Reshape(bias, out, 1, 1, 1))
}

// interleavePhases assembles p[a][b]: [N, B, H, W] into [N, B, 2H, 2W] with
// out[.., 2i+a, 2j+b] = p[a][b][.., i, j]: columns by matmuls with constant 0/1 spreading matrices
// [W, 2W] (exact: one nonzero term per output), rows by concatenating whole rows.
func interleavePhases(p [2][2]*Node) *Node {
	g := p[0][0].Graph()
	d := p[0][0].Shape().Dimensions
	n, bsz, h, w := d[0], d[1], d[2], d[3]
	rows := make([]*Node, 2)
	for a := range 2 {
		var r *Node
		for b := range 2 {
			spread := spreadMatrix(g, p[a][b].DType(), w, 2, b)                                 // [W, 2W]: column j → 2j + b
			t := DotGeneral(Reshape(p[a][b], n*bsz*h, w), []int{1}, nil, spread, []int{0}, nil) // [N·B·H, 2W]
			if r == nil {
				r = t
			} else {
				r = Add(r, t)
			}
		}
		rows[a] = Reshape(r, n*bsz*h, 1, 2*w)
	}
	return Reshape(Concatenate(rows, 1), n, bsz, 2*h, 2*w)
}
