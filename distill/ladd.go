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

// LADD is latent adversarial diffusion distillation (Sauer et al., "Fast High-Resolution Image
// Synthesis with Latent Adversarial Diffusion Distillation", arXiv 2403.12015), here in pixel space:
//
//   - Student (§3.1): initialized from the teacher, it maps x_{t_s} = α x0 + σ ε at one of its K
//     fixed timesteps t_s to x̂0 = S(x_{t_s}, t_s, c); x0 is real or teacher-generated data (§3.3,
//     "synthetic data": list both files in data.train to mix them).
//   - Re-noising (§3.2): x̂0 and the real x0 are noised again at t̂ = sigmoid(m + s·n), n ~ N(0,1),
//     with one shared ε'; the logit-normal location m sets the emphasis (high t̂: global structure,
//     low t̂: detail; paper Fig. 4).
//   - Discriminator (§3.2): the frozen teacher is the feature network; small trainable heads read its
//     feature maps at several depths (encoder, middle, decoder taps), each conditioned on t̂ (FiLM)
//     and on the class (projection, Miyato & Koyama arXiv 1802.05637). Only the heads train.
//   - Losses: hinge for the heads, non-saturating (or hinge) for the student, whose gradient flows
//     through the frozen teacher into x̂0; optional distillation term ‖x̂0 − teacher solve‖² (§3.3).
//
// Heads and student have their own AdamW (ladd.head_lr; ladd.head_steps head updates per student
// update); the student has an EMA. All randomness comes from the run's checkpointed PCG, so a
// resumed run continues exactly.
type LADD struct {
	cfg     Config
	lc      LADDConfig
	times   []float64
	student *models.Denoiser
	teacher *models.Denoiser
	adv     *adversary
	classes int
	latent  bool // latent data: x̂0 is not clipped (clipData)
	dStep   *trainer.Step
	gStep   *trainer.Step
}

// NewLADD returns the trainer.MethodFactory of a LADD run.
func NewLADD(cfg Config, lc LADDConfig, teacher Teacher) trainer.MethodFactory {
	return func(backend compute.Backend, store *model.Store, job trainer.Job, resumed bool) (trainer.Method, error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := lc.Validate(teacher.Model.TapNames()); err != nil {
			return nil, err
		}
		l := &LADD{cfg: cfg, lc: lc, times: cfg.Times(job.Diffusion.TMax), classes: job.Model.NumClasses, latent: job.Latent()}
		if n := len(lc.StudentTWeights); n > 0 && n != len(l.times) {
			return nil, fmt.Errorf("ladd.student_t_weights: %d weights for %d student timesteps (distill.student_steps)", n, len(l.times))
		}
		nets, err := prepareStudent(store, cfg, teacher, job, resumed)
		if err != nil {
			return nil, err
		}
		l.student, l.teacher = nets.student, nets.teacher
		if lc.FreezeStudent && !resumed {
			// The frozen student never runs its update, which creates /ema: its EMA is itself.
			if err := copyScope(store, trainer.ModelScope, trainer.EMAScope); err != nil {
				return nil, fmt.Errorf("ladd.freeze_student: %w", err)
			}
		}
		l.adv = newAdversary(lc, nets.teacher, nets.tNet, teacher, job.Seed, l.classes)
		if l.dStep, err = newHeadsStep(backend, store, job.Trainer, lc, l.headsLoss); err != nil {
			return nil, err
		}
		if l.gStep, err = trainer.NewTermsStep(backend, store, job.Trainer, trainer.ModelScope, true, l.studentLoss); err != nil {
			return nil, err
		}
		return l, nil
	}
}

// SampleLogitNormal draws t = sigmoid(m + s·n), n ~ N(0, 1) (LADD §3.2); its q-quantile is
// sigmoid(m + s·Φ⁻¹(q)). The result is clamped to [1e-4, tMax].
func SampleLogitNormal(rng *rand.Rand, m, s, tMax float64) float64 {
	t := 1 / (1 + math.Exp(-(m + s*rng.NormFloat64())))
	return min(max(t, 1e-4), tMax)
}

// inputs draws the student timesteps t_s, the re-noising times t̂ and noise ε' of one update and
// returns the step inputs (x0, ε, t_s, cond, t̂, ε' [3B, …] (see adversary.noise), w_adv), with
// w_adv the adversarial term's switch for the student: 0 during ladd.head_warmup, else 1.
func (l *LADD) inputs(step int, b *trainer.Batch, rng *rand.Rand) []*tensors.Tensor {
	tS := make([]float32, b.B)
	for i := range tS {
		tS[i] = float32(l.times[drawIndex(rng, l.lc.StudentTWeights, len(l.times))])
	}
	tHat, eps2 := l.adv.noise(b, rng)
	return []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(tS, b.B),
		b.CondTensor(),
		tHat, eps2, tensors.FromScalar(float32(l.advSwitch(step)))}
}

// drawIndex draws an index in [0, n): uniformly (rng.IntN, part 5's stream) without weights, else
// with probability w[i]/Σw (one rng.Float64).
func drawIndex(rng *rand.Rand, w []float64, n int) int {
	if len(w) == 0 {
		return rng.IntN(n)
	}
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	u := rng.Float64() * sum
	for i, v := range w {
		if u < v {
			return i
		}
		u -= v
	}
	for i := len(w) - 1; i >= 0; i-- { // rounding: the last index with weight
		if w[i] > 0 {
			return i
		}
	}
	return n - 1
}

// advSwitch is 0 while the heads warm up (student update step < ladd.head_warmup), else 1.
func (l *LADD) advSwitch(step int) float64 {
	if step < l.lc.HeadWarmup {
		return 0
	}
	return 1
}

// Step runs ladd.head_steps head updates, then one student update, each on freshly drawn t_s, t̂
// and ε' for the batch. Terms: the heads' d_* (averaged over their updates) and the student's g_*.
// The student update is skipped with ladd.freeze_student, and during the heads' warm-up when it
// would have no loss (distill_weight 0); the step then reports the heads' loss.
func (l *LADD) Step(step int, b *trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	terms, d, err := headUpdates(l.dStep, step, l.lc.HeadSteps, func() []*tensors.Tensor { return l.inputs(step, b, rng) })
	if err != nil || !d.Applied {
		return d, wrapErr("ladd heads", err)
	}
	if l.lc.FreezeStudent || (l.advSwitch(step) == 0 && l.lc.DistillWeight == 0) {
		d.Terms = terms
		return d, nil
	}
	g, err := l.gStep.RunInputs(step, l.inputs(step, b, rng)...)
	if err != nil {
		return g, fmt.Errorf("ladd student: %w", err)
	}
	for k, v := range g.Terms {
		terms[k] = v
	}
	g.Terms = terms
	return g, nil
}

// scopes hands out the scopes of one graph: GoMLX allows In(name) once per parent scope, and
// Shared(name) for every later visit (the teacher runs several times in the student's graph).
type scopes struct {
	root    *model.Scope
	visited map[string]bool
}

func newScopes(root *model.Scope) *scopes { return &scopes{root: root, visited: map[string]bool{}} }

func (s *scopes) get(name string) *model.Scope {
	if s.visited[name] {
		return s.root.Shared("%s", name)
	}
	s.visited[name] = true
	return s.root.In("%s", name)
}

// studentX0 is the student's prediction x̂0 = S(α(t_s)·x0 + σ(t_s)·ε, t_s, c). x0, eps: [B, H, W, C];
// tS: [B].
func (l *LADD) studentX0(sc *scopes, x0, eps, tS, cond *Node) *Node {
	alpha, sigma := l.student.Schedule.AlphaSigmaNode(ExpandAxes(tS, 1, 2, 3))
	xt := Add(Mul(alpha, x0), Mul(sigma, eps))
	x0hat, _ := l.student.Denoise(sc.get(trainer.ModelScope), xt, tS, cond)
	return x0hat
}

// logits re-noises x at t̂ with ε', reads the teacher's taps and returns one logit vector [B] per head.
func (l *LADD) logits(sc *scopes, x, tHat, eps2, cond *Node) []*Node {
	return l.adv.logits(sc, x, tHat, eps2, cond)
}

// headsLoss is the heads' hinge loss (adversary.discLoss) with the student's x̂0 held fixed as the
// fake and the batch's x0 as the real; with ladd.head_t_min only the fakes with t_s >= it count.
// Terms: d_loss, d_real, d_fake.
func (l *LADD) headsLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x0, eps, tS, cond, tHat, eps2 := in[0], in[1], in[2], in[3], in[4], in[5]
	sc := newScopes(root)
	fake := StopGradient(l.studentX0(sc, x0, eps, tS, cond))
	return l.adv.discLoss(sc, x0, fake, tHat, eps2, cond, tS, l.times, tMinMask(tS, l.lc.HeadTMin))
}

// tMinMask is the 0/1 mask [B] of the examples with t_s >= tMin (nil, meaning all, when tMin is 0).
func tMinMask(tS *Node, tMin float64) *Node {
	if tMin <= 0 {
		return nil
	}
	return ConvertDType(GreaterOrEqual(tS, Scalar(tS.Graph(), tS.DType(), tMin-1e-6)), tS.DType())
}

// studentLoss is w_adv·adv_weight·λ·Σ_heads mean_b gen(D(x̂0 re-noised)) + distill_weight·mean_b
// ‖x̂0 − x̂0_T‖², with the teacher's solve x̂0_T from the same input held fixed, w_adv the warm-up
// switch (inputs) and λ = 1, or with ladd.adaptive_weight the stopped ratio of the two terms'
// gradient norms at the student's output layer. Terms: g_adv, g_distill (and lambda).
func (l *LADD) studentLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x0, eps, tS, cond, tHat, eps2, wAdv := in[0], in[1], in[2], in[3], in[4], in[5], in[6]
	sc := newScopes(root)
	x0hat := l.studentX0(sc, x0, eps, tS, cond)
	mask := tMinMask(tS, l.lc.AdvTMin) // ladd.adv_t_min: the adversarial term only on examples with t_s >= it
	adv := l.adv.genLoss(sc, x0hat, tHat, eps2, cond, mask)
	terms := map[string]*Node{"g_adv": adv}
	var dist *Node
	if l.lc.DistillWeight > 0 {
		alpha, sigma := l.teacher.Schedule.AlphaSigmaNode(ExpandAxes(tS, 1, 2, 3))
		xt := Add(Mul(alpha, x0), Mul(sigma, eps))
		target := StopGradient(teacherSolve(l.teacher, sc, xt, tS, cond, l.lc.DistillSteps, l.lc.DistillCFG, l.lc.DistillGuidanceInterval, l.classes, l.latent))
		dist = ReduceAllMean(losses.MeanSquared(x0hat, target))
		terms["g_distill"] = dist
	}
	advW := MulScalar(wAdv, l.lc.AdvWeight)
	if l.lc.AdaptiveWeight {
		w := outputLayer(root.Store(), model.JoinPath(root.Scope(), trainer.ModelScope), x0.Graph())
		lambda := losses.AdaptiveWeight(Gradient(dist, w)[0], Gradient(adv, w)[0])
		advW = Mul(advW, lambda)
		terms["lambda"] = lambda
	}
	loss := Mul(adv, advW)
	if dist != nil {
		loss = Add(loss, MulScalar(dist, l.lc.DistillWeight))
	}
	return loss, terms
}

// outputLayer is the value node of the student's last weight (the U-Net's output conv, or its pixel
// head's last conv; the DiT's final linear): where ladd.adaptive_weight compares the gradients.
func outputLayer(store *model.Store, prefix string, g *Graph) *Node {
	for _, p := range []string{"out/pixel_head2/kernel", "out/conv/kernel", "final/linear/weight"} {
		if v := store.GetVariable(model.JoinPath(prefix, p)); v != nil {
			return v.NodeValue(g)
		}
	}
	panic(fmt.Errorf("ladd.adaptive_weight: the student under %s has no output layer (out/conv, out/pixel_head2 or final/linear)", prefix))
}

func addOrSet(a, b *Node) *Node {
	if a == nil {
		return b
	}
	return Add(a, b)
}
