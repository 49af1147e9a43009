package distill

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// PeRFlowConfig is the perflow: section: piecewise rectified flow (Yan et al., "PeRFlow:
// Piecewise Rectified Flow as Universal Plug-and-Play Accelerator", arXiv 2405.07510).
type PeRFlowConfig struct {
	// Windows K: (0, t_max] cut into K equal time windows; the student samples in K steps.
	Windows int `mapstructure:"windows"`
	// TeacherSteps are the teacher's DDIM steps across one window (PeRFlow on SD 1.5: 8).
	TeacherSteps int `mapstructure:"teacher_steps"`
	// Guidance is the CFG scale of the teacher's solve (1: none); the student then samples at cfg 1.
	Guidance float64 `mapstructure:"guidance"`
	// Parameterization of the straight-line target: eps keeps the teacher's output head (the
	// student's prediction, read as a DDIM step from t to the window's end, lands on the line's
	// end). The velocity parameterization of a flow model is not built.
	Parameterization string `mapstructure:"parameterization"`
	// StartFraction is the share of examples trained exactly at their window's start t = t_hi, the
	// only time a K-step sampler queries; the rest draw t uniformly in (t_lo, t_hi] as in the paper
	// (0: the paper's uniform draw; 1: only the K sampling times).
	StartFraction float64 `mapstructure:"start_fraction"`
}

// DefaultPeRFlowConfig: 4 windows, 4 teacher steps per window, the teachers' CFG 2.
func DefaultPeRFlowConfig() PeRFlowConfig {
	return PeRFlowConfig{Windows: 4, TeacherSteps: 4, Guidance: 2, Parameterization: "eps"}
}

// Validate checks every key; errors name it as "perflow.<key>".
func (c PeRFlowConfig) Validate() error {
	switch {
	case c.Windows < 1:
		return fmt.Errorf("perflow.windows: must be positive, got %d", c.Windows)
	case c.TeacherSteps < 1:
		return fmt.Errorf("perflow.teacher_steps: must be positive, got %d", c.TeacherSteps)
	case !(c.Guidance >= 1):
		return fmt.Errorf("perflow.guidance: must be >= 1, got %g", c.Guidance)
	case !(c.StartFraction >= 0 && c.StartFraction <= 1):
		return fmt.Errorf("perflow.start_fraction: must be in [0, 1], got %g", c.StartFraction)
	case c.Parameterization != "eps":
		return fmt.Errorf("perflow.parameterization: %q: only eps (the teacher's output head) is built", c.Parameterization)
	}
	return nil
}

// PeRFlow distils the teacher into a K-window piecewise-linear flow (arXiv 2405.07510 §3): per
// example a window [t_lo, t_hi] = [j/K, (j+1)/K]·t_max and a time t in it; the window's start is
// real data noised to t_hi, z_s = α(t_hi)·x0 + σ(t_hi)·ε; the frozen teacher solves it to t_lo
// (perflow.teacher_steps guided DDIM steps), z_e; the straight line between them gives
// x_t = z_e + (t − t_lo)/(t_hi − t_lo)·(z_s − z_e). In the eps-preserving parameterization the
// student keeps the teacher's output head and is trained so that one DDIM step from (x_t, t) to
// t_lo lands on z_e: loss = mean ‖α(t_lo)·x̂0 + σ(t_lo)·ε̂ − z_e‖² with (x̂0, ε̂) the student's
// prediction at x_t (PeRFlowEnd). Sampling: DDIM at the K window starts (trailing spacing, K
// steps) walks the lines exactly; ΔW = W_student − W_teacher (`fewstep export -delta`) transfers
// to other fine-tunes of the teacher.
type PeRFlow struct {
	cfg     Config
	pc      PeRFlowConfig
	tMax    float64
	classes int
	latent  bool // latent data: the teacher's steps do not clip x̂0 (clipData)
	nets
	gStep *trainer.Step
}

// NewPeRFlow returns the trainer.MethodFactory of a PeRFlow run.
func NewPeRFlow(cfg Config, pc PeRFlowConfig, teacher Teacher) trainer.MethodFactory {
	return func(backend compute.Backend, store *model.Store, job trainer.Job, resumed bool) (trainer.Method, error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := pc.Validate(); err != nil {
			return nil, err
		}
		p := &PeRFlow{cfg: cfg, pc: pc, tMax: job.Diffusion.TMax, classes: job.Model.NumClasses, latent: job.Latent()}
		var err error
		if p.nets, err = prepareStudent(store, cfg, teacher, job, resumed); err != nil {
			return nil, err
		}
		if p.gStep, err = trainer.NewTermsStep(backend, store, job.Trainer, trainer.ModelScope, true, p.loss); err != nil {
			return nil, err
		}
		return p, nil
	}
}

// inputs draws each example's window and time: x0, ε, t_lo, t_hi, t, cond.
func (p *PeRFlow) inputs(b *trainer.Batch, rng *rand.Rand) []*tensors.Tensor {
	lo, hi, t := make([]float32, b.B), make([]float32, b.B), make([]float32, b.B)
	k := float64(p.pc.Windows)
	for i := range b.B {
		j := float64(rng.IntN(p.pc.Windows))
		l, h := j/k*p.tMax, (j+1)/k*p.tMax
		lo[i], hi[i] = float32(l), float32(h)
		t[i] = float32(h - rng.Float64()*(h-l)) // (lo, hi]
		if p.pc.StartFraction > 0 && rng.Float64() < p.pc.StartFraction {
			t[i] = float32(h)
		}
	}
	vec := func(v []float32) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(v, b.B) }
	return []*tensors.Tensor{tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C), tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C),
		vec(lo), vec(hi), vec(t), b.CondTensor()}
}

// Line is the point at time t of the straight line from (lo, zE) to (hi, zS):
// zE + (t − lo)/(hi − lo)·(zS − zE). zE, zS: [B, H, W, C]; lo, hi, t: [B].
func Line(zE, zS, lo, hi, t *Node) *Node {
	frac := ExpandAxes(Div(Sub(t, lo), Sub(hi, lo)), 1, 2, 3)
	return Add(zE, Mul(frac, Sub(zS, zE)))
}

// loss is mean ‖DDIM(x_t → t_lo; student) − z_e‖². Terms: perflow (the loss).
func (p *PeRFlow) loss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x0, eps, lo, hi, t, cond := in[0], in[1], in[2], in[3], in[4], in[5]
	sc := newScopes(root)
	sched := p.teacher.Schedule
	alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(hi, 1, 2, 3))
	zS := Add(Mul(alpha, x0), Mul(sigma, eps))
	zE, _ := teacherSteps(p.teacher, sc, zS, hi, lo, cond, p.pc.TeacherSteps, p.pc.Guidance, nil, p.classes, p.latent)
	zE = StopGradient(zE)
	xt := Line(zE, zS, lo, hi, t)
	x0hat, epsHat := p.student.Denoise(sc.get(trainer.ModelScope), xt, t, cond)
	end := PeRFlowEnd(sched, x0hat, epsHat, lo)
	loss := ReduceAllMean(Square(Sub(end, zE)))
	return loss, map[string]*Node{"perflow": loss}
}

// PeRFlowEnd is the student's DDIM step to the window's end without clipping: α(lo)·x̂0 + σ(lo)·ε̂.
func PeRFlowEnd(sched models.Schedule, x0hat, epsHat, lo *Node) *Node {
	alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(lo, 1, 2, 3))
	return Add(Mul(alpha, x0hat), Mul(sigma, epsHat))
}

// PeRFlowEpsTarget is the eps-preserving target at x_t: the ε* for which the DDIM step from t to lo
// with x̂0 = (x_t − σ_t·ε*)/α_t lands on zE, ε* = (zE − (α_lo/α_t)·x_t)/(σ_lo − α_lo·σ_t/α_t), and that
// x̂0. (Defined for t > lo; the loss compares end points instead, which needs no division.)
func PeRFlowEpsTarget(sched models.Schedule, xt, zE, t, lo *Node) (x0, eps *Node) {
	aT, sT := sched.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	aL, sL := sched.AlphaSigmaNode(ExpandAxes(lo, 1, 2, 3))
	r := Div(aL, aT)
	eps = Div(Sub(zE, Mul(r, xt)), Sub(sL, Mul(r, sT)))
	return Div(Sub(xt, Mul(sT, eps)), aT), eps
}

// Step runs one student update.
func (p *PeRFlow) Step(step int, b *trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	res, err := p.gStep.RunInputs(step, p.inputs(b, rng)...)
	if err != nil {
		return res, fmt.Errorf("perflow: %w", err)
	}
	return res, nil
}
