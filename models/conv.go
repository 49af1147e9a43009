package models

import (
	"strings"

	"github.com/gomlx/compute/shapes"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
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
	kernel := b.Param(scope, g, "kernel", init, 1, k, k, cin, out)
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
// On ONNX Runtime the gradient of a strided Conv needs input dilation, which ORT's Conv lacks
// (gomlx-notes), so stride 2 runs as a stride-1 conv followed by taking every other row and
// column (4× the work of these few layers, with a plain pad as gradient).
func convNative(x, kernel, bias *Node, k, stride int) *Node {
	p := k / 2
	convStride := stride
	if stride == 2 && backendKind(x.Graph()) == backendONNX {
		convStride = 1
	}
	y := Convolve(x, kernel).AxesConfig(cfAxes).StridePerAxis(convStride, convStride).PaddingPerDim([][2]int{{p, p}, {p, p}}).Done()
	if backendKind(x.Graph()) == backendONNX && convStride == 1 && y.Type() == NodeTypeConvGeneral {
		graphMap[NodeId, bool](y.Graph(), nativeConvsKey{})[y.Id()] = true
	}
	if convStride != stride {
		d := y.Shape().Dimensions
		y = Reshape(y, d[0], d[1], d[2]/2, 2, d[3]/2, 2)
		y = SliceAxisFast(SliceAxisFast(y, 3, 0, 1), 5, 0, 1)
		y = Reshape(y, d[0], d[1], d[2]/2, d[3]/2)
	}
	return Add(y, Reshape(bias, kernel.Shape().Dimensions[3], 1, 1, 1))
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

// nativeConvsKey marks, in graph state, the ConvGeneral nodes whose gradient convNativeVJP builds.
type nativeConvsKey struct{}

// convNativeVJP is the gradient of a stride-1 "same" channels-first ConvGeneral on ONNX Runtime,
// where GoMLX's generic conv gradient (grouped convs for the kernel gradient) runs slowly:
//   - dx = conv(dy, W') with W'[ky, kx, n, c] = W[k−1−ky, k−1−kx, c, n] (a native conv);
//   - dW = dy·colsᵀ with cols the k² shifted copies of the padded input (native slices) — one GEMM.
//
// x: [C, B, H, W], kernel: [k, k, C, N], dy: [N, B, H, W].
func convNativeVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	if !graphMap[NodeId, bool](node.Graph(), nativeConvsKey{})[node.Id()] {
		return originalConvVJP(node, vjps, outShape)
	}
	x, kernel, dy := node.Inputs()[0], node.Inputs()[1], vjps[0]
	kd := kernel.Shape().Dimensions
	k, c, n := kd[0], kd[2], kd[3]
	p := k / 2
	flipped := Transpose(Reverse(kernel, 0, 1), 2, 3) // [k, k, N, C]
	dx := Convolve(dy, flipped).AxesConfig(cfAxes).PaddingPerDim([][2]int{{p, p}, {p, p}}).Done()
	return []*Node{dx, Reshape(Transpose(kernelGradient(x, dy, k), 0, 1), k, k, c, n)}
}

// kernelGradientChunk is the batch chunk of kernelGradient: the k²-fold column matrix is built for
// this many examples at a time, bounding the memory it takes.
const kernelGradientChunk = 16

// kernelGradient is dL/dW as [N, k²·C] = Σ_chunks dy_chunk · cols_chunkᵀ, where cols holds the k²
// shifted copies of the padded input (native slices), for x: [C, B, H, W], dy: [N, B, H, W].
func kernelGradient(x, dy *Node, k int) *Node {
	xd := x.Shape().Dimensions
	c, bsz, h, w := xd[0], xd[1], xd[2], xd[3]
	n, p := dy.Shape().Dimensions[0], k/2
	xp := Pad(x, ScalarZero(x.Graph(), x.DType()), compute.PadAxis{}, compute.PadAxis{}, compute.PadAxis{Start: p, End: p}, compute.PadAxis{Start: p, End: p})
	var dw *Node
	for b0 := 0; b0 < bsz; b0 += kernelGradientChunk {
		b1 := min(b0+kernelGradientChunk, bsz)
		xc := Slice(xp, AxisRange(), AxisRange(b0, b1))
		taps := make([]*Node, 0, k*k)
		for ky := range k {
			for kx := range k {
				taps = append(taps, Slice(xc, AxisRange(), AxisRange(), AxisRange(ky, ky+h), AxisRange(kx, kx+w)))
			}
		}
		m := (b1 - b0) * h * w
		cols := Reshape(Concatenate(taps, 0), k*k*c, m) // [K, M_chunk]
		dyc := Reshape(Slice(dy, AxisRange(), AxisRange(b0, b1)), n, m)
		part := DotGeneral(dyc, []int{1}, nil, cols, []int{1}, nil) // [N, K]
		if dw == nil {
			dw = part
		} else {
			dw = Add(dw, part)
		}
	}
	return dw
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
