package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/losses"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
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
	cfg      Config
	lc       LADDConfig
	times    []float64
	student  *models.Denoiser
	teacher  *models.Denoiser
	tNet     *models.UNet
	heads    *models.Builder
	conv     models.ConvImpl
	classes  int
	dStep    *trainer.Step
	gStep    *trainer.Step
	headsCfg trainer.Config
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
		if key := SameArchitecture(job.Model, teacher.Model); key != "" {
			return nil, fmt.Errorf("%s: the student starts from the teacher's weights, so its model section must equal the teacher's (%s)", key, teacher.Dir)
		}
		if job.Diffusion != teacher.Diffusion {
			return nil, fmt.Errorf("diffusion: the student must use the teacher's schedule and parameterization (%s)", teacher.Dir)
		}
		if !resumed {
			if _, err := LoadTeacher(store, teacher, cfg.TeacherEMA, true); err != nil {
				return nil, err
			}
		} else if !hasScope(store, TeacherScope) {
			return nil, fmt.Errorf("resume: the checkpoint has no /%s weights", TeacherScope)
		}
		l := &LADD{cfg: cfg, lc: lc, times: cfg.Times(job.Diffusion.TMax), classes: job.Model.NumClasses,
			heads: &models.Builder{Seed: job.Seed ^ 0x1add}, conv: models.ConvImpl(teacher.Model.Conv)}
		var err error
		var sNet, tNet *models.UNet
		if l.student, sNet, err = models.NewDenoiser(job.Model, job.Diffusion, job.Seed); err != nil {
			return nil, err
		}
		sNet.Frozen = true // every student weight comes from the teacher (or the checkpoint)
		if l.teacher, tNet, err = models.NewDenoiser(teacher.Model, teacher.Diffusion, job.Seed); err != nil {
			return nil, err
		}
		tNet.Frozen = true
		l.tNet = tNet
		l.headsCfg = job.Trainer
		l.headsCfg.LR = lc.HeadLR // same warmup and cosine, counted in head updates
		l.headsCfg.Steps *= lc.HeadSteps
		l.headsCfg.WarmupSteps *= lc.HeadSteps
		if l.dStep, err = trainer.NewTermsStep(backend, store, l.headsCfg, trainer.DiscScope, false, l.headsLoss); err != nil {
			return nil, err
		}
		if l.gStep, err = trainer.NewTermsStep(backend, store, job.Trainer, trainer.ModelScope, true, l.studentLoss); err != nil {
			return nil, err
		}
		return l, nil
	}
}

func hasScope(store *model.Store, scope string) bool {
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+scope+"/") {
			return true
		}
	}
	return false
}

// SampleLogitNormal draws t = sigmoid(m + s·n), n ~ N(0, 1) (LADD §3.2); its q-quantile is
// sigmoid(m + s·Φ⁻¹(q)). The result is clamped to [1e-4, tMax].
func SampleLogitNormal(rng *rand.Rand, m, s, tMax float64) float64 {
	t := 1 / (1 + math.Exp(-(m + s*rng.NormFloat64())))
	return min(max(t, 1e-4), tMax)
}

// inputs draws the student timesteps t_s, the re-noising times t̂ and noise ε' of one update and
// returns the step inputs (x0, ε, t_s, cond, t̂, ε').
func (l *LADD) inputs(b *trainer.Batch, rng *rand.Rand) []*tensors.Tensor {
	tS := make([]float32, b.B)
	for i := range tS {
		tS[i] = float32(l.times[rng.IntN(len(l.times))])
	}
	tHat := make([]float32, b.B)
	for i := range tHat {
		tHat[i] = float32(SampleLogitNormal(rng, l.lc.TLocation, l.lc.TScale, 1))
	}
	eps2 := make([]float32, len(b.X0))
	for i := range eps2 {
		eps2[i] = float32(rng.NormFloat64())
	}
	return []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(tS, b.B),
		tensors.FromFlatDataAndDimensions(b.Cond, b.B),
		tensors.FromFlatDataAndDimensions(tHat, b.B),
		tensors.FromFlatDataAndDimensions(eps2, b.B, b.H, b.W, b.C)}
}

// Step runs ladd.head_steps head updates, then one student update, each on freshly drawn t_s, t̂
// and ε' for the batch. Terms: the heads' d_* (averaged over their updates) and the student's g_*.
func (l *LADD) Step(step int, b *trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	terms := map[string]float64{}
	for j := range l.lc.HeadSteps {
		d, err := l.dStep.RunInputs(step*l.lc.HeadSteps+j, l.inputs(b, rng)...)
		if err != nil {
			return d, fmt.Errorf("ladd heads: %w", err)
		}
		if !d.Applied {
			return d, nil
		}
		for k, v := range d.Terms {
			terms[k] += v / float64(l.lc.HeadSteps)
		}
	}
	g, err := l.gStep.RunInputs(step, l.inputs(b, rng)...)
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
	alpha, sigma := l.teacher.Schedule.AlphaSigmaNode(ExpandAxes(tHat, 1, 2, 3))
	xt := Add(Mul(alpha, x), Mul(sigma, eps2))
	feats := l.tNet.Features(sc.get(TeacherScope), xt, tHat, cond, l.lc.Taps)
	disc := sc.get(trainer.DiscScope)
	out := make([]*Node, len(feats))
	for i, f := range feats {
		out[i] = l.head(disc.In("%s", l.lc.Taps[i]), f, tHat, cond)
	}
	return out
}

// head is one discriminator head on a teacher feature map f: [C, B, h, w] (channels-first):
// z = SiLU(FiLM_t̂(Conv3×3(f))); logit = mean_{h,w} Conv1×1(z) + ⟨mean_{h,w} z, E[c]⟩/√Ch. → [B].
func (l *LADD) head(scope *model.Scope, f, tHat, cond *Node) *Node {
	ch := l.lc.HeadChannels
	z := l.heads.Conv2D(scope.In("conv"), f, ch, 3, 1, l.conv, models.InitFanIn) // [Ch, B, h, w]
	film := l.heads.Dense(scope.In("film"), models.TimestepFeatures(MulScalar(tHat, 1000), 32), 2*ch, models.InitZeros)
	film = ExpandAxes(Transpose(film, 0, 1), 2, 3) // [2Ch, B, 1, 1]
	scale, shift := Slice(film, AxisRange(0, ch)), Slice(film, AxisRange(ch, 2*ch))
	z = models.SiLU(Add(Mul(z, OnePlus(scale)), shift))
	local := ReduceMean(l.heads.Conv2D(scope.In("out"), z, 1, 1, 1, l.conv, models.InitFanIn), 0, 2, 3) // [B]
	pooled := Transpose(ReduceMean(z, 2, 3), 0, 1)                                                      // [B, Ch]
	table := l.heads.Param(scope.In("class"), f.Graph(), "table", models.InitNormal, 1, l.classes+1, ch)
	emb := Dot(OneHot(cond, l.classes+1, dtypes.Float32), table).Product() // [B, Ch]
	proj := MulScalar(ReduceSum(Mul(pooled, emb), 1), 1/math.Sqrt(float64(ch)))
	return Add(local, proj)
}

// headsLoss is Σ_heads mean_b hinge(D(real), D(fake)) with the student's x̂0 held fixed. Terms:
// d_loss, d_real and d_fake (mean logits).
func (l *LADD) headsLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x0, eps, tS, cond, tHat, eps2 := in[0], in[1], in[2], in[3], in[4], in[5]
	sc := newScopes(root)
	fake := StopGradient(l.studentX0(sc, x0, eps, tS, cond))
	both := l.logits(sc, Concatenate([]*Node{x0, fake}, 0), Concatenate([]*Node{tHat, tHat}, 0),
		Concatenate([]*Node{eps2, eps2}, 0), Concatenate([]*Node{cond, cond}, 0))
	bsz := x0.Shape().Dimensions[0]
	var loss, real, fk *Node
	for _, lg := range both {
		r, f := Slice(lg, AxisRange(0, bsz)), Slice(lg, AxisRange(bsz, 2*bsz))
		loss = addOrSet(loss, ReduceAllMean(losses.HingeDiscriminator(r, f)))
		real, fk = addOrSet(real, ReduceAllMean(r)), addOrSet(fk, ReduceAllMean(f))
	}
	k := 1 / float64(len(both))
	return loss, map[string]*Node{"d_loss": loss, "d_real": MulScalar(real, k), "d_fake": MulScalar(fk, k)}
}

// studentLoss is adv_weight·Σ_heads mean_b gen(D(x̂0 re-noised)) + distill_weight·mean_b ‖x̂0 − x̂0_T‖²,
// with the teacher's solve x̂0_T from the same input held fixed. Terms: g_adv, g_distill.
func (l *LADD) studentLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x0, eps, tS, cond, tHat, eps2 := in[0], in[1], in[2], in[3], in[4], in[5]
	sc := newScopes(root)
	x0hat := l.studentX0(sc, x0, eps, tS, cond)
	var adv *Node
	for _, lg := range l.logits(sc, x0hat, tHat, eps2, cond) {
		per := losses.NonSaturatingGenerator(lg)
		if l.lc.GenLoss == "hinge" {
			per = losses.HingeGenerator(lg)
		}
		adv = addOrSet(adv, ReduceAllMean(per))
	}
	loss := MulScalar(adv, l.lc.AdvWeight)
	terms := map[string]*Node{"g_adv": adv}
	if l.lc.DistillWeight > 0 {
		target := StopGradient(l.teacherSolve(sc, x0, eps, tS, cond))
		dist := ReduceAllMean(losses.MeanSquared(x0hat, target))
		loss = Add(loss, MulScalar(dist, l.lc.DistillWeight))
		terms["g_distill"] = dist
	}
	return loss, terms
}

// teacherSolve runs ladd.distill_steps guided DDIM steps of the teacher from the student's input
// x_{t_s} down to 0, per example (times t_s·(1 − j/n)), and returns the final x̂0. → [B, H, W, C].
func (l *LADD) teacherSolve(sc *scopes, x0, eps, tS, cond *Node) *Node {
	alpha, sigma := l.teacher.Schedule.AlphaSigmaNode(ExpandAxes(tS, 1, 2, 3))
	x := Add(Mul(alpha, x0), Mul(sigma, eps))
	n := l.lc.DistillSteps
	w := Scalar(x.Graph(), dtypes.Float32, l.lc.DistillCFG)
	var x0hat *Node
	for j := range n {
		t := MulScalar(tS, 1-float64(j)/float64(n))
		s := MulScalar(tS, 1-float64(j+1)/float64(n))
		var epsHat *Node
		x0hat, epsHat = sampling.GuidedX0Eps(l.teacher, sc.get(TeacherScope), x, t, cond, w, l.classes, l.lc.DistillCFG != 1)
		x = sampling.DDIMStep(l.teacher.Schedule, x, x0hat, epsHat, t, s, true)
	}
	return ClipScalar(x0hat, -1, 1)
}

func addOrSet(a, b *Node) *Node {
	if a == nil {
		return b
	}
	return Add(a, b)
}
