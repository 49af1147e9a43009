package models

import (
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Fast data movement for the pure-Go backend.
//
// The backend copies Slice outputs element by element on one thread, and GoMLX differentiates
// Pad and Concatenate into Slices; together they dominated the im2col training step. The backend's
// Pad, however, copies contiguous blocks with memmove and accepts negative padding (cropping). So
// fewstep crops with PadSigned and registers gradients that are themselves PadSigned:
//   - a PadSigned node's gradient is PadSigned with the negated configuration;
//   - a Concatenate node's gradient for input i is a crop of the adjoint (on every node: the
//     concatenation axis is read off the shapes).
// Pads not created by PadSigned keep GoMLX's own gradient. XLA also accepts negative padding.

// padConfigsKey holds, in graph state, the configurations of the PadSigned nodes of a graph.
type padConfigsKey struct{}

// PadSigned pads (positive) or crops (negative) every axis of x by (Start, End); cfg must have one
// entry per axis and no interior padding. The fill value is zero. x: any shape.
func PadSigned(x *Node, cfg ...compute.PadAxis) *Node {
	if len(cfg) != x.Rank() {
		exceptions.Panicf("PadSigned: %d axis configs for rank %d", len(cfg), x.Rank())
	}
	for _, c := range cfg {
		if c.Interior != 0 {
			exceptions.Panicf("PadSigned: interior padding not supported")
		}
	}
	g := x.Graph()
	y := Pad(x, ScalarZero(g, x.DType()), cfg...)
	graphMap[NodeId, []compute.PadAxis](g, padConfigsKey{})[y.Id()] = cfg
	return y
}

// graphMap returns the map stored in g's state under key, creating it on first use. Such maps
// carry per-node facts (pad configs, marks) from graph building to the gradient functions and
// are freed with the graph.
func graphMap[K comparable, V any](g *Graph, key any) map[K]V {
	m, _ := g.State(key).(map[K]V)
	if m == nil {
		m = map[K]V{}
		g.AttachState(key, m)
	}
	return m
}

// cropsKey marks, in graph state, the Gather nodes built by SliceAxisFast, with their crop config.
type cropsKey struct{}

// SliceAxisFast returns x[..., start:end, ...] on one axis. The forward is a Gather of one slice
// (contiguous chunk copies, no zero-fill: the backend's Pad zero-fills its whole output first,
// one element at a time); the gradient is PadSigned of the adjoint back to x's shape.
func SliceAxisFast(x *Node, axis, start, end int) *Node {
	if axis < 0 {
		axis += x.Rank()
	}
	dims := x.Shape().Dimensions
	if start < 0 || end > dims[axis] || start >= end {
		exceptions.Panicf("SliceAxisFast: range [%d, %d) invalid for axis %d of %s", start, end, axis, x.Shape())
	}
	if start == 0 && end == dims[axis] {
		return x
	}
	g := x.Graph()
	if backendKind(g) != backendGo {
		return SliceAxis(x, axis, AxisRange(start, end)) // other backends slice natively
	}
	y := GatherSlices(x, []int{axis}, Const(g, []int32{int32(start)}), []int{end - start}, true)
	if y.Type() != NodeTypeGather {
		exceptions.Panicf("SliceAxisFast: GatherSlices built a %s node, expected Gather", y.Type())
	}
	cfg := make([]compute.PadAxis, x.Rank())
	cfg[axis] = compute.PadAxis{Start: start, End: dims[axis] - end} // the inverse: pad back
	graphMap[NodeId, []compute.PadAxis](g, cropsKey{})[y.Id()] = cfg
	return y
}

var originalGatherVJP = VJPRegistration[NodeTypeGather]

func cropVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	if taps := graphMap[NodeId, *convTaps](node.Graph(), convTapsKey{})[node.Id()]; taps != nil && taps.dy != nil {
		return []*Node{taps.inputGradient(), ZerosLike(node.Inputs()[1])}
	}
	cfg, ok := graphMap[NodeId, []compute.PadAxis](node.Graph(), cropsKey{})[node.Id()]
	if !ok {
		return originalGatherVJP(node, vjps, outShape)
	}
	grads := make([]*Node, len(node.Inputs()))
	grads[0] = PadSigned(vjps[0], cfg...)
	for i := 1; i < len(grads); i++ {
		grads[i] = ZerosLike(node.Inputs()[i])
	}
	return grads
}

var (
	originalPadVJP    = VJPRegistration[NodeTypePad]
	originalConcatVJP = VJPRegistration[NodeTypeConcatenate]
)

func init() {
	VJPRegistration[NodeTypePad] = padSignedVJP
	VJPRegistration[NodeTypeConcatenate] = concatenateVJP
	VJPRegistration[NodeTypeGather] = cropVJP
}

func padSignedVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	cfg, ok := graphMap[NodeId, []compute.PadAxis](node.Graph(), padConfigsKey{})[node.Id()]
	if !ok {
		return originalPadVJP(node, vjps, outShape)
	}
	inverse := make([]compute.PadAxis, len(cfg))
	for i, c := range cfg {
		inverse[i] = compute.PadAxis{Start: -c.Start, End: -c.End}
	}
	fill := node.Inputs()[1]
	return []*Node{PadSigned(vjps[0], inverse...), ZerosLike(fill)}
}

// concatenateVJP crops the adjoint back into the pieces of the concatenation.
func concatenateVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	inputs := node.Inputs()
	out := node.Shape().Dimensions
	axis := -1
	for i, d := range inputs[0].Shape().Dimensions {
		if d != out[i] {
			axis = i
		}
	}
	if axis < 0 || len(inputs) == 1 {
		return originalConcatVJP(node, vjps, outShape)
	}
	grads := make([]*Node, len(inputs))
	offset := 0
	for i, in := range inputs {
		size := in.Shape().Dimensions[axis]
		grads[i] = SliceAxisFast(vjps[0], axis, offset, offset+size)
		offset += size
	}
	return grads
}

// matmulsKey marks, in graph state, the DotGeneral nodes built by MatMulCF.
type matmulsKey struct{}

// MatMulCF is the channels-first matmul y = w·x for w: [N, K] (small: weights) and x: [K, M]
// (large: activations with M = batch·positions) → [N, M]. All three GEMMs of forward and backward
// are in layouts the pure-Go backend's GEMM reads directly, so none of the large operands is
// transposed: y = w·x (lhs contracts its last axis, rhs [K, M] "non-transposed"),
// dw = dy·xᵀ (both contract their last axis: rhs "transposed" layout) and dx = wᵀ·dy (only the
// small w is transposed). GoMLX's generic DotGeneral gradient would instead contract leading axes,
// which the backend serves by transposing the large operands.
func MatMulCF(w, x *Node) *Node {
	y := DotGeneral(w, []int{1}, nil, x, []int{0}, nil)
	graphMap[NodeId, bool](y.Graph(), matmulsKey{})[y.Id()] = true
	return y
}

var originalDotVJP = VJPRegistration[NodeTypeDotGeneral]

func init() {
	VJPRegistration[NodeTypeDotGeneral] = matmulVJP
}

func matmulVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	if !graphMap[NodeId, bool](node.Graph(), matmulsKey{})[node.Id()] {
		return originalDotVJP(node, vjps, outShape)
	}
	w, x := node.Inputs()[0], node.Inputs()[1]
	dy := vjps[0]                                                          // [N, M]
	dw := Transpose(DotGeneral(x, []int{1}, nil, dy, []int{1}, nil), 0, 1) // [N, K], computed as [K, N]
	if taps := graphMap[NodeId, *convTaps](node.Graph(), convTapsKey{})[node.Id()]; taps != nil {
		// x is the tap matrix of a stride-1 conv: its Gather computes the input gradient as a
		// transposed convolution of dy (convTaps.inputGradient). The [K, M] column gradient is
		// never materialized: this placeholder has no consumer and the backend drops it.
		taps.dy, taps.w = dy, w
		return []*Node{dw, ZerosLike(x)}
	}
	dx := DotGeneral(Transpose(w, 0, 1), []int{1}, nil, dy, []int{0}, nil) // [K, M]
	return []*Node{dw, dx}
}
