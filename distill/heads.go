package distill

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/losses"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// adversary is LADD's discriminator (Sauer et al., arXiv 2403.12015, §3.2): the frozen teacher is
// the feature network; small trainable heads (under /disc) read its feature maps at the configured
// taps, each conditioned on the re-noising time t̂ (FiLM) and on the class (projection, Miyato &
// Koyama arXiv 1802.05637). LADD and Imagine Flash (its optional adversarial term) share it.
type adversary struct {
	lc      LADDConfig
	teacher *models.Denoiser
	tNet    *models.UNet
	heads   *models.Builder
	conv    models.ConvImpl
	classes int
}

func newAdversary(lc LADDConfig, teacher *models.Denoiser, tNet *models.UNet, t Teacher, seed uint64, classes int) *adversary {
	return &adversary{lc: lc, teacher: teacher, tNet: tNet, heads: &models.Builder{Seed: seed ^ 0x1add},
		conv: models.ConvImpl(t.Model.Conv), classes: classes}
}

// noise draws the re-noising times t̂ ~ logit-normal(t_location, t_scale) (§3.2) and the noise ε'
// of one update: t̂ [B], ε' [B, H, W, C].
func (a *adversary) noise(b *trainer.Batch, rng *rand.Rand) (tHat, eps2 *tensors.Tensor) {
	th := make([]float32, b.B)
	for i := range th {
		th[i] = float32(SampleLogitNormal(rng, a.lc.TLocation, a.lc.TScale, 1))
	}
	return tensors.FromFlatDataAndDimensions(th, b.B), normalImages(b, rng)
}

// normalImages draws one standard normal per pixel of the batch: [B, H, W, C].
func normalImages(b *trainer.Batch, rng *rand.Rand) *tensors.Tensor {
	e := make([]float32, len(b.X0))
	for i := range e {
		e[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(e, b.B, b.H, b.W, b.C)
}

// logits re-noises x at t̂ with ε', reads the teacher's taps and returns one logit map [B, N] per
// head (N = h·w patches, or 1 with ladd.head_output pooled).
func (a *adversary) logits(sc *scopes, x, tHat, eps2, cond *Node) []*Node {
	alpha, sigma := a.teacher.Schedule.AlphaSigmaNode(ExpandAxes(tHat, 1, 2, 3))
	xt := Add(Mul(alpha, x), Mul(sigma, eps2))
	feats := a.tNet.Features(sc.get(TeacherScope), xt, tHat, cond, a.lc.Taps)
	disc := sc.get(trainer.DiscScope)
	out := make([]*Node, len(feats))
	for i, f := range feats {
		out[i] = a.head(disc.In("%s", a.lc.Taps[i]), f, tHat, cond)
	}
	return out
}

// head is one discriminator head on a teacher feature map f: [C, B, h, w] (channels-first):
// z = SiLU(FiLM_t̂(Conv3×3(f))); the logit at each location is Conv1×1(z) + ⟨z, E[c]⟩/√Ch
// (projection conditioning). ladd.head_output patch keeps one logit per location, [B, h·w], so
// the losses apply per patch (as ADD's token-wise heads, arXiv 2311.17042 §3.2); pooled averages
// them first, [B, 1] (the mean of the patch logits: the losses see one logit per image).
func (a *adversary) head(scope *model.Scope, f, tHat, cond *Node) *Node {
	ch := a.lc.HeadChannels
	z := a.heads.Conv2D(scope.In("conv"), f, ch, 3, 1, a.conv, models.InitFanIn) // [Ch, B, h, w]
	film := a.heads.Dense(scope.In("film"), models.TimestepFeatures(MulScalar(tHat, 1000), 32), 2*ch, models.InitZeros)
	film = ExpandAxes(Transpose(film, 0, 1), 2, 3) // [2Ch, B, 1, 1]
	scale, shift := Slice(film, AxisRange(0, ch)), Slice(film, AxisRange(ch, 2*ch))
	z = models.SiLU(Add(Mul(z, OnePlus(scale)), shift))
	local := Squeeze(a.heads.Conv2D(scope.In("out"), z, 1, 1, 1, a.conv, models.InitFanIn), 0) // [B, h, w]
	table := a.heads.Param(scope.In("class"), f.Graph(), "table", models.InitNormal, 1, a.classes+1, ch)
	emb := Dot(OneHot(cond, a.classes+1, dtypes.Float32), table).Product()                                    // [B, Ch]
	proj := MulScalar(ReduceSum(Mul(z, ExpandAxes(Transpose(emb, 0, 1), 2, 3)), 0), 1/math.Sqrt(float64(ch))) // [B, h, w]
	logits := Add(local, proj)
	bsz := logits.Shape().Dimensions[0]
	if a.lc.HeadOutput == "pooled" {
		return Reshape(ReduceMean(logits, 1, 2), bsz, 1)
	}
	return Reshape(logits, bsz, -1)
}

// discLoss is Σ_heads mean hinge(D(real), D(fake)) over examples and patches, real and fake
// re-noised at the same t̂ with the same ε' in one batch. real, fake: [B, H, W, C]. Terms: d_loss;
// d_real and d_fake (mean logits); d_acc_real and d_acc_fake, the fraction of images a head calls
// right (mean logit > 0 for real, < 0 for fake), averaged over heads.
func (a *adversary) discLoss(sc *scopes, real, fake, tHat, eps2, cond *Node) (*Node, map[string]*Node) {
	both := a.logits(sc, Concatenate([]*Node{real, fake}, 0), Concatenate([]*Node{tHat, tHat}, 0),
		Concatenate([]*Node{eps2, eps2}, 0), Concatenate([]*Node{cond, cond}, 0))
	bsz := real.Shape().Dimensions[0]
	// saysReal is the fraction of images whose mean logit is > 0. logits: [B, N] → scalar.
	saysReal := func(logits *Node) *Node {
		m := ReduceMean(logits, 1)
		return ReduceAllMean(ConvertDType(GreaterThan(m, ZerosLike(m)), dtypes.Float32))
	}
	var loss, r, f, accR, accF *Node
	for _, lg := range both {
		lr, lf := Slice(lg, AxisRange(0, bsz)), Slice(lg, AxisRange(bsz, 2*bsz))
		loss = addOrSet(loss, ReduceAllMean(losses.HingeDiscriminator(lr, lf)))
		r, f = addOrSet(r, ReduceAllMean(lr)), addOrSet(f, ReduceAllMean(lf))
		accR, accF = addOrSet(accR, saysReal(lr)), addOrSet(accF, OneMinus(saysReal(lf)))
	}
	k := 1 / float64(len(both))
	return loss, map[string]*Node{"d_loss": loss, "d_real": MulScalar(r, k), "d_fake": MulScalar(f, k),
		"d_acc_real": MulScalar(accR, k), "d_acc_fake": MulScalar(accF, k)}
}

// genLoss is Σ_heads mean gen(D(fake re-noised)) over examples and patches, with ladd.gen_loss
// (non-saturating or hinge); its gradient flows through the frozen teacher into fake: [B, H, W, C].
func (a *adversary) genLoss(sc *scopes, fake, tHat, eps2, cond *Node) *Node {
	var adv *Node
	for _, lg := range a.logits(sc, fake, tHat, eps2, cond) {
		per := losses.NonSaturatingGenerator(lg)
		if a.lc.GenLoss == "hinge" {
			per = losses.HingeGenerator(lg)
		}
		adv = addOrSet(adv, ReduceAllMean(per))
	}
	return adv
}

// headUpdates runs n head updates (update indices step·n … step·n + n − 1), each on freshly drawn
// inputs, and returns their terms averaged over the updates plus d_grad_norm, the heads' gradient
// norm. When an update is not applied (a non-finite loss stops the run) it returns that update's result.
func headUpdates(dStep *trainer.Step, step, n int, inputs func() []*tensors.Tensor) (map[string]float64, trainer.StepResult, error) {
	terms := map[string]float64{}
	var d trainer.StepResult
	for j := range n {
		var err error
		if d, err = dStep.RunInputs(step*n+j, inputs()...); err != nil || !d.Applied {
			return nil, d, err
		}
		for k, v := range d.Terms {
			terms[k] += v / float64(n)
		}
		terms["d_grad_norm"] += d.GradNorm / float64(n)
	}
	return terms, d, nil
}

// wrapErr prefixes a non-nil error with what failed.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// newHeadsStep is the heads' optimizer step (/disc only, no EMA): AdamW at ladd.head_lr with the
// student's warmup and cosine, counted in head updates (ladd.head_steps per student update).
func newHeadsStep(backend compute.Backend, store *model.Store, tc trainer.Config, lc LADDConfig, loss trainer.TermsFn) (*trainer.Step, error) {
	tc.LR = lc.HeadLR
	tc.Steps *= lc.HeadSteps
	tc.WarmupSteps *= lc.HeadSteps
	return trainer.NewTermsStep(backend, store, tc, trainer.DiscScope, false, loss)
}
