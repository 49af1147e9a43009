package trainer

import (
	"fmt"
	"maps"
	"slices"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/losses"
	"github.com/fewstep/fewstep/models"
)

// Batch is the host data of one step. X0, Eps: [B, H, W, C]; T: [B]; Cond: [B] (null class already
// substituted for dropped labels), or [B, CondWidth] for a text model (models.Config.CondWidth:
// the class, then the caption's token ids; dropped conditions are the null class with the empty
// caption); Noise: [B, H, W, C], the stored noise of noise–image pairs (data.noise), nil otherwise.
type Batch struct {
	X0, Eps, T []float32
	Noise      []float32
	Cond       []int32
	B, H, W, C int
	// CondWidth is the number of Cond values per example (0 or 1: a class-only [B] condition).
	CondWidth int
}

// CondTensor is Cond as a tensor: [B] int32, or [B, CondWidth] when CondWidth > 1.
func (b *Batch) CondTensor() *tensors.Tensor {
	if b.CondWidth > 1 {
		return tensors.FromFlatDataAndDimensions(b.Cond, b.B, b.CondWidth)
	}
	return tensors.FromFlatDataAndDimensions(b.Cond, b.B)
}

// StepResult is what one optimizer step reports.
type StepResult struct {
	Loss, GradNorm float64
	// Applied is false when the step was skipped because the loss, the gradient norm or an
	// updated weight was not finite.
	Applied bool
	// Terms are named parts of the loss (per-term logging of distillation methods).
	Terms map[string]float64
}

// LossFn builds the scalar training loss from the step's data inputs; the trained weights live
// under root.In(ModelScope).
type LossFn func(root *model.Scope, inputs []*Node) *Node

// Step is a compiled optimizer step: loss, clipped AdamW, EMA (all state changes skipped when
// anything is not finite).
type Step struct {
	cfg   Config
	exec  *model.Exec
	terms []string // names of the extra outputs, sorted
	graph *Graph   // the graph of the last call
}

// Graph is the compiled graph of the last call (nil before the first).
func (s *Step) Graph() *Graph { return s.graph }

// NewLossStep compiles (lazily, at the first call) an optimizer step of loss over the /model
// weights of store, with EMA. Its data inputs are those passed to RunInputs, in order.
func NewLossStep(backend compute.Backend, store *model.Store, cfg Config, loss LossFn) (*Step, error) {
	return NewScopedLossStep(backend, store, cfg, ModelScope, true, loss)
}

// NewScopedLossStep is NewLossStep over the trainable variables under /scope, with or without
// EMA (a discriminator's heads train under /disc without EMA, on their own AdamW moments).
func NewScopedLossStep(backend compute.Backend, store *model.Store, cfg Config, scope string, ema bool, loss LossFn) (*Step, error) {
	return NewTermsStep(backend, store, cfg, scope, ema, func(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
		return loss(root, in), nil
	})
}

// TermsFn builds the scalar loss and named scalar terms reported with it (StepResult.Terms).
type TermsFn func(root *model.Scope, inputs []*Node) (loss *Node, terms map[string]*Node)

// NewTermsStep is NewScopedLossStep for a loss that also reports named terms. The term names must
// be the same at every call.
func NewTermsStep(backend compute.Backend, store *model.Store, cfg Config, scope string, ema bool, loss TermsFn) (*Step, error) {
	st := &Step{cfg: cfg}
	exec, err := model.NewExec(backend, store, func(root *model.Scope, in []*Node) []*Node {
		n := len(in) - 3
		lr, step, emaDecay := in[n], in[n+1], in[n+2]
		root.SetTraining(lr.Graph(), true)
		root.SetGraphParam(lr.Graph(), models.TrainStepParam, step) // LoRA rank dropout's counter
		l, terms := loss(root, in[:n])
		gnorm, applied := applyAdamW(cfg, store, l, stepInputs{lr: lr, step: step, emaDecay: emaDecay, scope: scope, noEMA: !ema},
			func(gnorm *Node) *Node { return LogicalAnd(Finite(l), Finite(gnorm)) })
		out := []*Node{l, gnorm, applied}
		st.terms = slices.Sorted(maps.Keys(terms))
		for _, k := range st.terms {
			out = append(out, terms[k])
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	st.exec = exec
	return st, nil
}

// NewStep compiles the training step of denoiser d (diffusion loss) whose weights live under /model.
func NewStep(backend compute.Backend, store *model.Store, d *models.Denoiser, cfg Config) (*Step, error) {
	return NewLossStep(backend, store, cfg, func(root *model.Scope, in []*Node) *Node {
		x0, eps, t, cond := in[0], in[1], in[2], in[3]
		return ReduceAllMean(losses.Diffusion(d, root.In(ModelScope), x0, eps, t, cond))
	})
}

// Run executes diffusion step `step` (0-based) on b. The weights are left unchanged when the loss
// or the gradient norm is not finite (the caller stops the run).
func (s *Step) Run(b *Batch, step int) (StepResult, error) {
	return s.RunInputs(step,
		tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.T, b.B),
		b.CondTensor())
}

// RunInputs executes optimizer step `step` (0-based) with the given data inputs; the learning
// rate and EMA decay come from the schedules of the step's Config.
func (s *Step) RunInputs(step int, inputs ...*tensors.Tensor) (StepResult, error) {
	args := make([]any, 0, len(inputs)+3)
	for _, t := range inputs {
		args = append(args, t)
	}
	args = append(args, tensors.FromScalar(float32(LR(s.cfg, step))), tensors.FromScalar(float32(step+1)),
		tensors.FromScalar(float32(EMADecay(s.cfg, step))))
	outs, g, err := s.exec.CallWithGraph(args...)
	if err != nil {
		return StepResult{}, fmt.Errorf("train step %d: %w", step, err)
	}
	s.graph = g
	loss := tensors.ToScalar[float32](outs[0])
	gnorm := tensors.ToScalar[float32](outs[1])
	applied := tensors.ToScalar[bool](outs[2])
	res := StepResult{Loss: float64(loss), GradNorm: float64(gnorm), Applied: applied}
	if len(s.terms) > 0 {
		res.Terms = map[string]float64{}
		for i, k := range s.terms {
			res.Terms[k] = float64(tensors.ToScalar[float32](outs[3+i]))
		}
	}
	return res, nil
}
