package distill

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/losses"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// LCMConfig is the lcm: section: latent consistency distillation (Luo et al., "Latent Consistency
// Models", arXiv 2310.04378; LCM-LoRA, arXiv 2311.05556).
type LCMConfig struct {
	// Timesteps N and Skip k: the teacher's grid t_n = n/N·t_max, of which the consistency pairs
	// (t_{n+k}, t_n), n a multiple of k, are drawn uniformly (LCM: N = 1000, k = 20).
	Timesteps int `mapstructure:"timesteps"`
	Skip      int `mapstructure:"skip"`
	// Guidance ω of the teacher's step (fixed; LCM samples ω ∈ [5, 15] and embeds it, not built).
	Guidance float64 `mapstructure:"guidance"`
	// Target is whose prediction at t_n the student matches: ema (the EMA student θ⁻, LCM's full
	// fine-tune; with a LoRA student, the EMA of its adapters), self (the student itself without
	// gradient, LCM-LoRA) or auto (self for a LoRA student, else ema).
	Target string `mapstructure:"target"`
	// Distance is mse or pseudo_huber (sqrt(mean (f − y)² + c²) − c with c = huber_c).
	Distance string  `mapstructure:"distance"`
	HuberC   float64 `mapstructure:"huber_c"`
	// SigmaData and TimestepScaling set the boundary condition c_skip(t) = σd²/((s·τ)² + σd²),
	// c_out(t) = s·τ/√((s·τ)² + σd²) with τ = 1000·t/t_max (LCM's discrete timestep; s = 10).
	SigmaData       float64 `mapstructure:"sigma_data"`
	TimestepScaling float64 `mapstructure:"timestep_scaling"`
	// Weighting of the pairs: uniform (LCM) or ict, λ = 1/(ς(t_{n+k}) − ς(t_n)) with ς = σ/α capped
	// at 80 (EDM's σ_max), the improved consistency training weighting (Song & Dhariwal, arXiv
	// 2310.14189 §3.4), normalized to mean 1 over the pairs: low-noise pairs weigh more.
	Weighting string `mapstructure:"weighting"`
}

// DefaultLCMConfig is LCM's recipe at guidance 2 (the teachers here sample at CFG 2).
func DefaultLCMConfig() LCMConfig {
	return LCMConfig{Timesteps: 1000, Skip: 20, Guidance: 2, Target: "auto", Distance: "pseudo_huber", HuberC: 0.001,
		SigmaData: 0.5, TimestepScaling: 10, Weighting: "uniform"}
}

// Validate checks every key; errors name it as "lcm.<key>".
func (c LCMConfig) Validate() error {
	switch {
	case c.Timesteps < 1:
		return fmt.Errorf("lcm.timesteps: must be positive, got %d", c.Timesteps)
	case c.Skip < 1 || c.Timesteps%c.Skip != 0:
		return fmt.Errorf("lcm.skip: must be positive and divide lcm.timesteps %d, got %d", c.Timesteps, c.Skip)
	case !(c.Guidance >= 1):
		return fmt.Errorf("lcm.guidance: must be >= 1, got %g", c.Guidance)
	case c.Target != "auto" && c.Target != "ema" && c.Target != "self":
		return fmt.Errorf("lcm.target: want auto, ema or self, got %q", c.Target)
	case c.Distance != "mse" && c.Distance != "pseudo_huber":
		return fmt.Errorf("lcm.distance: want mse or pseudo_huber, got %q", c.Distance)
	case !(c.HuberC > 0):
		return fmt.Errorf("lcm.huber_c: must be positive, got %g", c.HuberC)
	case c.Weighting != "uniform" && c.Weighting != "ict":
		return fmt.Errorf("lcm.weighting: want uniform or ict, got %q", c.Weighting)
	case !(c.SigmaData > 0) || !(c.TimestepScaling > 0):
		return fmt.Errorf("lcm.sigma_data and lcm.timestep_scaling: must be positive, got %g and %g", c.SigmaData, c.TimestepScaling)
	}
	return nil
}

// Boundary returns LCM's c_skip(t) and c_out(t) (host floats): c_skip(0) = 1, c_out(0) = 0, so
// f(x, 0) = x.
func (c LCMConfig) Boundary(t, tMax float64) (cSkip, cOut float64) {
	st := c.TimestepScaling * 1000 * t / tMax
	sd2 := c.SigmaData * c.SigmaData
	return sd2 / (st*st + sd2), st / math.Sqrt(st*st+sd2)
}

// Pair returns the times of grid pair n: t = t_{(n+1)k}, s = t_{nk} with t_m = m/N·tMax.
func (c LCMConfig) Pair(n int, tMax float64) (t, s float64) {
	return float64((n+1)*c.Skip) / float64(c.Timesteps) * tMax, float64(n*c.Skip) / float64(c.Timesteps) * tMax
}

// PairWeights returns the weight of each grid pair n = 0 … N/k − 1 (t = t_{n+k}, s = t_n) under
// c.Weighting: all 1 (uniform), or iCT's 1/(ς(t) − ς(s)), ς = min(σ/α, 80), scaled to mean 1.
func (c LCMConfig) PairWeights(sched models.Schedule, tMax float64) []float64 {
	pairs := c.Timesteps / c.Skip
	w := make([]float64, pairs)
	for n := range w {
		w[n] = 1
	}
	if c.Weighting != "ict" {
		return w
	}
	varsigma := func(t float64) float64 {
		a, s := sched.AlphaSigma(t)
		if s >= 80*a {
			return 80
		}
		return s / a
	}
	sum := 0.0
	for n := range w {
		t, s := c.Pair(n, tMax)
		w[n] = 1 / math.Max(varsigma(t)-varsigma(s), 1e-6)
		sum += w[n]
	}
	for n := range w {
		w[n] *= float64(pairs) / sum
	}
	return w
}

// LCM is consistency distillation (arXiv 2310.04378, Alg. 1 with the DDIM solver): per example a
// pair t = t_{n+k}, s = t_n of the teacher's grid and x_t = α_t·x0 + σ_t·ε from the data; the
// teacher takes one guided DDIM step x_t → x̂_s (ω = lcm.guidance); the student's consistency
// function f_θ(x, t) = c_skip(t)·x + c_out(t)·x̂0_θ(x, t) is pulled to sg(f_θ⁻(x̂_s, s)), θ⁻ the EMA
// student (full fine-tune) or the student itself (LoRA), with the L2 or pseudo-Huber distance.
// At t_0 = 0 the target is x̂_s itself (the boundary condition). Sampling is LCM's multistep
// sampler: the renoise sampler on the student's x̂0 (c_skip ≈ 0 at every t > 0 of a grid).
type LCM struct {
	cfg     Config
	lc      LCMConfig
	tMax    float64
	classes int
	latent  bool      // latent data: the teacher's steps do not clip x̂0 (clipData)
	self    bool      // target from /model (stop-gradient) instead of /ema
	weights []float64 // per grid pair (lcm.weighting)
	nets
	gStep *trainer.Step
}

// NewLCM returns the trainer.MethodFactory of an LCM run.
func NewLCM(cfg Config, lc LCMConfig, teacher Teacher) trainer.MethodFactory {
	return func(backend compute.Backend, store *model.Store, job trainer.Job, resumed bool) (trainer.Method, error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := lc.Validate(); err != nil {
			return nil, err
		}
		lora := job.Model.LoRA != nil && job.Model.LoRA.On()
		l := &LCM{cfg: cfg, lc: lc, tMax: job.Diffusion.TMax, classes: job.Model.NumClasses, latent: job.Latent(),
			self: lc.Target == "self" || (lc.Target == "auto" && lora)}
		var err error
		if l.nets, err = prepareStudent(store, cfg, teacher, job, resumed); err != nil {
			return nil, err
		}
		l.weights = lc.PairWeights(l.teacher.Schedule, l.tMax)
		if l.gStep, err = trainer.NewTermsStep(backend, store, job.Trainer, trainer.ModelScope, true, l.loss); err != nil {
			return nil, err
		}
		return l, nil
	}
}

// inputs draws each example's grid pair: t = t_{n+k}, s = t_n with n/k uniform in {0, …, N/k − 1},
// and the boundary coefficients of both: x0, ε, t, s, c_skip(t), c_out(t), c_skip(s), c_out(s),
// cond, and the pair's weight λ (lcm.weighting).
func (l *LCM) inputs(b *trainer.Batch, rng *rand.Rand) []*tensors.Tensor {
	t, s, w := make([]float32, b.B), make([]float32, b.B), make([]float32, b.B)
	cs := make([][]float32, 4)
	for j := range cs {
		cs[j] = make([]float32, b.B)
	}
	for i := range b.B {
		n := rng.IntN(len(l.weights)) // one weight per grid pair
		ti, si := l.lc.Pair(n, l.tMax)
		t[i], s[i], w[i] = float32(ti), float32(si), float32(l.weights[n])
		a, o := l.lc.Boundary(ti, l.tMax)
		c, d := l.lc.Boundary(si, l.tMax)
		cs[0][i], cs[1][i], cs[2][i], cs[3][i] = float32(a), float32(o), float32(c), float32(d)
	}
	vec := func(v []float32) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(v, b.B) }
	return []*tensors.Tensor{tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C), tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C),
		vec(t), vec(s), vec(cs[0]), vec(cs[1]), vec(cs[2]), vec(cs[3]), b.CondTensor(), vec(w)}
}

// consistency is f(x, t) = c_skip·x + c_out·x̂0(x, t) of the student's weights in scope.
func (l *LCM) consistency(scope *model.Scope, x, t, cSkip, cOut, cond *Node) *Node {
	x0hat, _ := l.student.Denoise(scope, x, t, cond)
	return Add(Mul(ExpandAxes(cSkip, 1, 2, 3), x), Mul(ExpandAxes(cOut, 1, 2, 3), x0hat))
}

// loss is mean_b λ_b·d(f_θ(x_t, t), sg(f_θ⁻(x̂_s, s))). Terms: lcm (the loss).
func (l *LCM) loss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x0, eps, t, s, cSkipT, cOutT, cSkipS, cOutS, cond, w := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], in[9]
	sc := newScopes(root)
	sched := l.teacher.Schedule
	alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	xt := Add(Mul(alpha, x0), Mul(sigma, eps))
	xs, _ := teacherSteps(l.teacher, sc, xt, t, s, cond, 1, l.lc.Guidance, nil, l.classes, l.latent)
	xs = StopGradient(xs)
	f := l.consistency(sc.get(trainer.ModelScope), xt, t, cSkipT, cOutT, cond)
	targetScope := trainer.ModelScope
	if !l.self {
		targetScope = trainer.EMAScope
		// A LoRA student's adapters were created under /model by the line above (up = 0): the EMA
		// target starts from them, as the full student's EMA starts from the teacher.
		trainer.EnsureEMA(root.Store())
	}
	target := StopGradient(l.consistency(sc.get(targetScope), xs, s, cSkipS, cOutS, cond))
	loss := ReduceAllMean(Mul(w, losses.ShiftedReconstruction(f, target, l.lc.Distance, l.lc.HuberC)))
	return loss, map[string]*Node{"lcm": loss}
}

// Step runs one student update.
func (l *LCM) Step(step int, b *trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	res, err := l.gStep.RunInputs(step, l.inputs(b, rng)...)
	if err != nil {
		return res, fmt.Errorf("lcm: %w", err)
	}
	return res, nil
}
