package trainer

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/losses"
	"github.com/fewstep/fewstep/models"
)

// Batch is the host data of one step. X0, Eps: [B, H, W, C]; T: [B]; Cond: [B] (null class already
// substituted for dropped labels).
type Batch struct {
	X0, Eps, T []float32
	Cond       []int32
	B, H, W, C int
}

// StepResult is what one optimizer step reports.
type StepResult struct {
	Loss, GradNorm float64
	// Applied is false when the step was skipped because the loss, the gradient norm or an
	// updated weight was not finite.
	Applied bool
}

// Step is the compiled training step of a denoiser: diffusion loss, clipped AdamW, EMA.
type Step struct {
	cfg  Config
	exec *model.Exec
}

// NewStep compiles (lazily, at the first call) the training step of d whose weights live under /model.
func NewStep(backend compute.Backend, store *model.Store, d *models.Denoiser, cfg Config) (*Step, error) {
	exec, err := model.NewExec(backend, store, func(root *model.Scope, in []*Node) []*Node {
		x0, eps, t, cond, lr, step, ema := in[0], in[1], in[2], in[3], in[4], in[5], in[6]
		root.SetTraining(x0.Graph(), true)
		loss := ReduceAllMean(losses.Diffusion(d, root.In(ModelScope), x0, eps, t, cond))
		gnorm, applied := applyAdamW(cfg, store, loss, stepInputs{lr: lr, step: step, emaDecay: ema},
			func(gnorm *Node) *Node { return LogicalAnd(Finite(loss), Finite(gnorm)) })
		return []*Node{loss, gnorm, applied}
	})
	if err != nil {
		return nil, err
	}
	return &Step{cfg: cfg, exec: exec}, nil
}

// Run executes optimizer step `step` (0-based) on b. The weights are left unchanged when the loss
// or the gradient norm is not finite (the caller stops the run).
func (s *Step) Run(b *Batch, step int) (StepResult, error) {
	outs, err := s.exec.Call(
		tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.T, b.B),
		tensors.FromFlatDataAndDimensions(b.Cond, b.B),
		tensors.FromScalar(float32(LR(s.cfg, step))),
		tensors.FromScalar(float32(step+1)),
		tensors.FromScalar(float32(EMADecay(s.cfg, step))),
	)
	if err != nil {
		return StepResult{}, fmt.Errorf("train step %d: %w", step, err)
	}
	loss := tensors.ToScalar[float32](outs[0])
	gnorm := tensors.ToScalar[float32](outs[1])
	applied := tensors.ToScalar[bool](outs[2])
	return StepResult{Loss: float64(loss), GradNorm: float64(gnorm), Applied: applied}, nil
}
