package generate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/onnx"

	"github.com/fewstep/fewstep/sampling"
)

// ErrNeedsONNXRuntime is returned by ExportONNX in a build without ONNX Runtime support.
var ErrNeedsONNXRuntime = errors.New("ONNX export needs the ONNX Runtime build of fewstep (make onnxruntime build-onnx) and GOMLX_BACKEND=onnx:/abs/path/libonnxruntime.so.1")

// ONNX input and output names of the exported graphs.
const (
	// Denoiser: x [N, H, W, C] float32, t [N] float32, cond [N] int32 (the class) or, for a text
	// model, [N, 1+L] int32 (the class — num_classes, the null class, for caption-only models — then
	// the caption's L token ids, 0 = padding; Generator.PromptCond builds it) → pred [N, H, W, C],
	// the raw network output in the model's parameterization (eps, v or x0).
	ONNXInputX, ONNXInputT, ONNXInputCond, ONNXOutputPred = "x", "t", "cond", "pred"
	// Generator: x_T [N, H, W, C], cond (as the denoiser's) and, for stochastic samplers, z [K, N, H, W, C]
	// (the fresh noise of each step that draws one) → images [N, H, W, C] in [-1, 1]. For a latent
	// model x, pred, x_T and z are latents [N, h, w, z_c] and the generator decodes its samples in the
	// graph: images [N, Model().ImageShape()].
	ONNXInputXT, ONNXInputZ, ONNXOutputImages = "x_T", "z", "images"
)

// ONNXPlan is the sampling plan baked into the generator graph of opts: its steps and the number of
// fresh-noise tensors (the z input) it needs.
func (g *Generator) ONNXPlan(opts Options) ([]sampling.PlanStep, error) {
	sc, err := g.Config(opts)
	if err != nil {
		return nil, err
	}
	s, err := g.sampler(sc)
	if err != nil {
		return nil, err
	}
	return s.Plan()
}

// ExportONNX writes the model as ONNX through GoMLX's ml/model/onnx, at a fixed batch size
// (dynamic batch fails in that library's conv op), with the weights as graph constants: the
// denoiser's forward pass to denoiserPath and, if generatorPath is not empty, the whole K-step
// generator of opts (times, coefficients and guidance baked in; sampling.GeneratorGraph) to
// generatorPath. The generator's backend must be ONNX Runtime.
func (g *Generator) ExportONNX(denoiserPath, generatorPath string, batch int, opts Options) error {
	if batch < 1 {
		return fmt.Errorf("generate: ONNX batch size %d, want >= 1", batch)
	}
	if !onnx.IsONNX(g.backend) {
		return ErrNeedsONNXRuntime
	}
	h, w, c := g.m.InputShape() // a latent model's denoiser and x_T are latents; its images are decoded in-graph
	img := shapes.Make(dtypes.Float32, batch, h, w, c)
	vec, cls := shapes.Make(dtypes.Float32, batch), shapes.Make(dtypes.Int32, batch)
	if cw := g.m.Model.CondWidth(); cw > 1 { // text model: the class, then the caption's token ids
		cls = shapes.Make(dtypes.Int32, batch, cw)
	}
	den, err := model.NewExec(g.backend, g.store, func(root *model.Scope, x, t, cond *Node) *Node {
		return g.den.Net(root.In(scope), x, t, cond)
	})
	if err != nil {
		return err
	}
	if err := saveONNX(g, den, denoiserPath, []shapes.Shape{img, vec, cls},
		[]string{ONNXInputX, ONNXInputT, ONNXInputCond}, []string{ONNXOutputPred}); err != nil {
		return fmt.Errorf("generate: ONNX denoiser %s: %w", denoiserPath, err)
	}
	if generatorPath == "" {
		return nil
	}
	sc, err := g.Config(opts)
	if err != nil {
		return err
	}
	s, err := g.sampler(sc)
	if err != nil {
		return err
	}
	plan, err := s.Plan()
	if err != nil {
		return fmt.Errorf("generate: ONNX generator: %w", err)
	}
	inShapes, names := []shapes.Shape{img, cls}, []string{ONNXInputXT, ONNXInputCond}
	var gen *model.Exec
	if k := sampling.PlanNoises(plan); k > 0 {
		inShapes, names = append(inShapes, shapes.Make(dtypes.Float32, k, batch, h, w, c)), append(names, ONNXInputZ)
		gen, err = model.NewExec(g.backend, g.store, func(root *model.Scope, xT, cond, z *Node) *Node {
			return g.decodeGraph(root, s.GeneratorGraph(root, xT, cond, z))
		})
	} else {
		gen, err = model.NewExec(g.backend, g.store, func(root *model.Scope, xT, cond *Node) *Node {
			return g.decodeGraph(root, s.GeneratorGraph(root, xT, cond, nil))
		})
	}
	if err != nil {
		return err
	}
	if err := saveONNX(g, gen, generatorPath, inShapes, names, []string{ONNXOutputImages}); err != nil {
		return fmt.Errorf("generate: ONNX generator %s: %w", generatorPath, err)
	}
	return nil
}

// decodeGraph appends a latent model's decoder to the generator graph (samples → images).
func (g *Generator) decodeGraph(root *model.Scope, x *Node) *Node {
	if g.decoder == nil {
		return x
	}
	return g.decoder.Graph(root, x)
}

// saveONNX writes one graph to a temporary file next to path and renames it into place.
func saveONNX(g *Generator, e *model.Exec, path string, in []shapes.Shape, inNames, outNames []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := onnx.SaveToFile(g.backend, e, tmp, in, inNames, outNames); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Denoise runs the denoiser's forward pass on the generator's backend (the reference the ONNX
// denoiser must match): x [N, H, W, C], t [N], cond [N] or [N, 1+L] → pred [N, H, W, C]; a latent
// model's x and pred are latents (Model().InputShape()).
func (g *Generator) Denoise(x, t []float32, cond []int32) ([]float32, error) {
	n := len(t)
	h, w, c := g.m.InputShape()
	cw := g.m.Model.CondWidth()
	if len(x) != n*h*w*c || len(cond) != n*cw {
		return nil, fmt.Errorf("generate: denoise: %d values, %d times, %d condition values (%d per image) for %dx%dx%d images", len(x), n, len(cond), cw, h, w, c)
	}
	e, err := model.NewExec(g.backend, g.store, func(root *model.Scope, xx, tt, cc *Node) *Node {
		root.SetTraining(xx.Graph(), true) // weights as parameters (gomlx-notes trap 2)
		return g.den.Net(root.In(scope), xx, tt, cc)
	})
	if err != nil {
		return nil, err
	}
	out, err := e.Call1(tensors.FromFlatDataAndDimensions(x, n, h, w, c), tensors.FromFlatDataAndDimensions(t, n), condTensor(cond, n, cw))
	if err != nil {
		return nil, err
	}
	return tensors.CopyFlatData[float32](out)
}

// condTensor is cond as [n] (cw = 1) or [n, cw] int32.
func condTensor(cond []int32, n, cw int) *tensors.Tensor {
	if cw > 1 {
		return tensors.FromFlatDataAndDimensions(cond, n, cw)
	}
	return tensors.FromFlatDataAndDimensions(cond, n)
}
