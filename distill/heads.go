package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

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
	tNet    models.Backbone
	heads   *models.Builder
	conv    models.ConvImpl
	classes int
}

func newAdversary(lc LADDConfig, teacher *models.Denoiser, tNet models.Backbone, t Teacher, seed uint64, classes int) *adversary {
	return &adversary{lc: lc, teacher: teacher, tNet: tNet, heads: &models.Builder{Seed: seed ^ 0x1add},
		conv: models.ConvImpl(t.Model.Conv), classes: classes}
}

// noise draws the re-noising times t̂ of one update (§3.2: logit-normal(t_location, t_scale)
// clamped to ladd.t_range, or uniform over it) and the noise ε' as three blocks of B images:
// [3B, H, W, C] = (ε' of the real images, ε' of the fakes, the R1 perturbation n). The fakes'
// block repeats the real one with ladd.same_noise; n is zero without ladd.r1_weight. With the
// defaults the draws are those of part 5 (t̂, then one ε' per real image), so old runs resume exactly.
func (a *adversary) noise(b *trainer.Batch, rng *rand.Rand) (tHat, eps2 *tensors.Tensor) {
	lo, hi := a.lc.TRange[0], a.lc.TRange[1]
	th := make([]float32, b.B)
	for i := range th {
		if a.lc.TDist == "uniform" {
			th[i] = float32(lo + (hi-lo)*rng.Float64())
		} else {
			th[i] = float32(min(max(SampleLogitNormal(rng, a.lc.TLocation, a.lc.TScale, 1), lo), hi))
		}
	}
	n := len(b.X0)
	e := make([]float32, 3*n)
	for i := range n {
		e[i] = float32(rng.NormFloat64())
	}
	if a.lc.SameNoise {
		copy(e[n:2*n], e[:n])
	} else {
		for i := n; i < 2*n; i++ {
			e[i] = float32(rng.NormFloat64())
		}
	}
	if a.lc.R1Weight > 0 {
		for i := 2 * n; i < 3*n; i++ {
			e[i] = float32(rng.NormFloat64())
		}
	}
	return tensors.FromFlatDataAndDimensions(th, b.B), tensors.FromFlatDataAndDimensions(e, 3*b.B, b.H, b.W, b.C)
}

// noiseBlock is block k (0 real ε', 1 fake ε', 2 R1 perturbation) of eps2 [3B, H, W, C].
func noiseBlock(eps2 *Node, k int) *Node {
	bsz := eps2.Shape().Dimensions[0] / 3
	return Slice(eps2, AxisRange(k*bsz, (k+1)*bsz))
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
	names := a.lc.Taps
	text := cond.Rank() == 2 // a text model: the heads also read the teacher's pooled caption
	if text {
		names = append(slices.Clip(names), models.TapText)
	}
	feats := a.tNet.Features(sc.get(TeacherScope), xt, tHat, cond, names)
	var pooled *Node
	if text {
		pooled, feats = feats[len(feats)-1], feats[:len(feats)-1]
	}
	class, _ := models.SplitCond(cond)
	disc := sc.get(trainer.DiscScope)
	out := make([]*Node, len(feats))
	for i, f := range feats {
		out[i] = a.head(disc.In("%s", a.lc.Taps[i]), f, tHat, class, pooled)
	}
	return out
}

// head is one discriminator head on a teacher feature map f: [C, B, h, w] (channels-first).
// With ladd.head_depth 0: z = SiLU(FiLM_t̂(Conv3×3(f))). With depth d > 0: d blocks of
// z = SiLU(FiLM_t̂(GroupNorm(Conv3×3(z)))), stride 2 while the map is larger than 4×4 (the
// conv stacks of public LADD/DMD2 heads). The logit at each location is Conv1×1(z) + ⟨z, E[c]⟩/√Ch
// (projection conditioning; E[c] is the class table's row, plus a linear map of the teacher's
// pooled caption vector for text models, pooled: [B, D] or nil). ladd.head_output patch keeps one logit per location, [B, h'·w'], so
// the losses apply per patch (as ADD's token-wise heads, arXiv 2311.17042 §3.2); pooled averages
// them first, [B, 1] (the mean of the patch logits: the losses see one logit per image).
func (a *adversary) head(scope *model.Scope, f, tHat, cond, pooled *Node) *Node {
	ch := a.lc.HeadChannels
	tFeat := models.TimestepFeatures(MulScalar(tHat, 1000), 32)
	// film applies z·(1 + scale) + shift from t̂; z: [Ch, B, h, w].
	film := func(scope *model.Scope, z *Node) *Node {
		ss := a.heads.Dense(scope, tFeat, 2*ch, models.InitZeros)
		ss = ExpandAxes(Transpose(ss, 0, 1), 2, 3) // [2Ch, B, 1, 1]
		scale, shift := Slice(ss, AxisRange(0, ch)), Slice(ss, AxisRange(ch, 2*ch))
		return Add(Mul(z, OnePlus(scale)), shift)
	}
	var z *Node
	if a.lc.HeadDepth == 0 {
		z = a.heads.Conv2D(scope.In("conv"), f, ch, 3, 1, a.conv, models.InitFanIn) // [Ch, B, h, w]
		z = models.SiLU(film(scope.In("film"), z))
	} else {
		z = f
		for i := range a.lc.HeadDepth {
			blk := scope.In("block%d", i)
			h, w := z.Shape().Dimensions[2], z.Shape().Dimensions[3]
			stride := 1
			if h > 4 && w > 4 && h%2 == 0 && w%2 == 0 {
				stride = 2
			}
			z = a.heads.Conv2D(blk.In("conv"), z, ch, 3, stride, a.conv, models.InitFanIn)
			z = a.heads.GroupNorm(blk.In("norm"), z, headGroups(ch))
			z = models.SiLU(film(blk.In("film"), z))
		}
	}
	local := Squeeze(a.heads.Conv2D(scope.In("out"), z, 1, 1, 1, a.conv, models.InitFanIn), 0) // [B, h', w']
	table := a.heads.Param(scope.In("class"), f.Graph(), "table", models.InitNormal, 1, a.classes+1, ch)
	emb := Dot(OneHot(cond, a.classes+1, dtypes.Float32), table).Product() // [B, Ch]
	if pooled != nil {
		emb = Add(emb, a.heads.Dense(scope.In("text"), pooled, ch, models.InitFanIn))
	}
	proj := MulScalar(ReduceSum(Mul(z, ExpandAxes(Transpose(emb, 0, 1), 2, 3)), 0), 1/math.Sqrt(float64(ch))) // [B, h', w']
	logits := Add(local, proj)
	bsz := logits.Shape().Dimensions[0]
	if a.lc.HeadOutput == "pooled" {
		return Reshape(ReduceMean(logits, 1, 2), bsz, 1)
	}
	return Reshape(logits, bsz, -1)
}

// headGroups is the GroupNorm group count of a head of ch channels: the largest of 8, 4, 2, 1
// that divides ch into groups of at least 4 channels. With one channel per group (instance norm)
// each example loses every channel's mean and scale, and in TestHeadsLearnToDiscriminate 8
// channels in 8 groups stayed at chance while 1 or 2 groups learned.
func headGroups(ch int) int {
	for _, g := range []int{8, 4, 2} {
		if ch%g == 0 && ch/g >= 4 {
			return g
		}
	}
	return 1
}

// TBucketEdges split t̂ into the buckets of the per-bucket head terms: t0 = [0, 0.1),
// t1 = [0.1, 0.3), t2 = [0.3, 0.55), t3 = [0.55, 1] (around 0.05, 0.2, 0.4, 0.7).
var TBucketEdges = []float64{0.1, 0.3, 0.55}

// discLoss is Σ_heads mean hinge(D(real), D(fake)) over examples and patches (+ r1_weight · the
// finite-difference R1 penalty on real), real and fake re-noised at the same t̂ in one batch, with
// eps2's real and fake blocks (see noise). real, fake: [B, H, W, C]. Terms, each measured on the
// batch before the update it drives (so on images the heads have not trained on within an epoch):
//   - d_loss, d_r1; d_real and d_fake (mean logits);
//   - d_acc_real and d_acc_fake: the fraction of images a head calls right (mean logit > 0 for
//     real, < 0 for fake), averaged over heads; d_gap = mean logit real − fake;
//   - the same three per head (d_acc_real/<tap>, …) and per t̂ bucket, averaged over heads
//     (d_acc_real/t0 … t3, d_gap/t0 …; see TBucketEdges). A bucket without examples in the batch
//     reports 0 accuracy and gap, and its d_n/t<k> (examples in the bucket) is 0. The slashed
//     breakdowns go to metrics.jsonl only, not to the progress line;
//   - with the fakes' student timesteps tS [B] and the student's times (LADD), the fakes'
//     accuracy and the gap per student timestep: d_acc_fake/s<k>, d_gap/s<k> and d_n/s<k>, with
//     k indexing times (s0 = the highest noise, the one-step sample).
//
// With fakeMask [B] (LADD's ladd.head_t_min; nil = all) the fakes' hinge half and every fake-side
// term (d_fake, d_acc_fake, d_gap and their breakdowns) average over the masked fakes only; the
// per-t_s breakdown (d_acc_fake/s<k>) still reports every t_s.
func (a *adversary) discLoss(sc *scopes, real, fake, tHat, eps2, cond, tS *Node, times []float64, fakeMask *Node) (*Node, map[string]*Node) {
	bsz := real.Shape().Dimensions[0]
	xs, ts, es, cs := []*Node{real, fake}, []*Node{tHat, tHat}, []*Node{noiseBlock(eps2, 0), noiseBlock(eps2, 1)}, []*Node{cond, cond}
	r1 := a.lc.R1Weight > 0
	if r1 {
		xs = append(xs, Add(real, MulScalar(noiseBlock(eps2, 2), a.lc.R1Sigma)))
		ts, es, cs = append(ts, tHat), append(es, noiseBlock(eps2, 0)), append(cs, cond)
	}
	all := a.logits(sc, Concatenate(xs, 0), Concatenate(ts, 0), Concatenate(es, 0), Concatenate(cs, 0))
	f32 := func(x *Node) *Node { return ConvertDType(x, dtypes.Float32) }
	// per-image mean logits and bucket masks, [B]
	var masks []*Node
	lo := 0.0
	for k := 0; k <= len(TBucketEdges); k++ {
		hi := 2.0
		if k < len(TBucketEdges) {
			hi = TBucketEdges[k]
		}
		masks = append(masks, Mul(f32(GreaterOrEqual(tHat, Scalar(tHat.Graph(), dtypes.Float32, lo))),
			f32(LessThan(tHat, Scalar(tHat.Graph(), dtypes.Float32, hi)))))
		lo = hi
	}
	var sMasks []*Node
	if tS != nil {
		for _, t := range times {
			sMasks = append(sMasks, f32(LessThan(Abs(AddScalar(tS, -t)), Scalar(tS.Graph(), dtypes.Float32, 1e-4))))
		}
	}
	fm := fakeMask
	if fm == nil {
		fm = OnesLike(tHat)
	}
	fm = f32(fm)
	terms := map[string]*Node{}
	add := func(name string, v *Node) { terms[name] = addOrSet(terms[name], v) }
	var loss, penalty *Node
	k := 1 / float64(len(all))
	for i, lg := range all {
		lr, lf := Slice(lg, AxisRange(0, bsz)), Slice(lg, AxisRange(bsz, 2*bsz))
		loss = addOrSet(loss, Add(ReduceAllMean(losses.HingeReal(lr)), maskedMean(ReduceMean(losses.HingeFake(lf), 1), fm)))
		if r1 {
			lp := Slice(lg, AxisRange(2*bsz, 3*bsz))
			penalty = addOrSet(penalty, MulScalar(ReduceAllMean(Square(Sub(lp, lr))), 1/(a.lc.R1Sigma*a.lc.R1Sigma)))
		}
		mr, mf := ReduceMean(lr, 1), ReduceMean(lf, 1) // [B]
		okR, okF := f32(GreaterThan(mr, ZerosLike(mr))), OneMinus(f32(GreaterThan(mf, ZerosLike(mf))))
		accR, accF, gap := ReduceAllMean(okR), maskedMean(okF, fm), Sub(ReduceAllMean(mr), maskedMean(mf, fm))
		tap := a.lc.Taps[i]
		terms["d_acc_real/"+tap], terms["d_acc_fake/"+tap], terms["d_gap/"+tap] = accR, accF, gap
		add("d_real", MulScalar(ReduceAllMean(lr), k))
		add("d_fake", MulScalar(maskedMean(ReduceMean(lf, 1), fm), k))
		add("d_acc_real", MulScalar(accR, k))
		add("d_acc_fake", MulScalar(accF, k))
		add("d_gap", MulScalar(gap, k))
		for j, m := range masks {
			add(fmt.Sprintf("d_acc_real/t%d", j), MulScalar(maskedMean(okR, m), k))
			add(fmt.Sprintf("d_acc_fake/t%d", j), MulScalar(maskedMean(okF, Mul(m, fm)), k))
			add(fmt.Sprintf("d_gap/t%d", j), MulScalar(Sub(maskedMean(mr, m), maskedMean(mf, Mul(m, fm))), k))
		}
		for j, m := range sMasks {
			add(fmt.Sprintf("d_acc_fake/s%d", j), MulScalar(maskedMean(okF, m), k))
			add(fmt.Sprintf("d_gap/s%d", j), MulScalar(maskedMean(Sub(mr, mf), m), k))
		}
	}
	for j, m := range sMasks {
		terms[fmt.Sprintf("d_n/s%d", j)] = ReduceAllSum(m)
	}
	for j, m := range masks {
		terms[fmt.Sprintf("d_n/t%d", j)] = ReduceAllSum(m)
	}
	terms["d_hinge"] = loss
	if r1 {
		terms["d_r1"] = penalty
		loss = Add(loss, MulScalar(penalty, a.lc.R1Weight))
	}
	terms["d_loss"] = loss
	return loss, terms
}

// maskedMean is the mean of v [B] over the examples where the 0/1 mask m [B] is 1 (0 when none).
func maskedMean(v, m *Node) *Node { return Div(ReduceAllSum(Mul(v, m)), MaxScalar(ReduceAllSum(m), 1)) }

// genLoss is Σ_heads mean gen(D(fake re-noised with eps2's fake block)) over examples and patches,
// with ladd.gen_loss (non-saturating or hinge); its gradient flows through the frozen teacher into
// fake: [B, H, W, C].
//
// With a mask [B] (LADD's ladd.adv_t_min) the mean is over the masked examples only (0 when none).
func (a *adversary) genLoss(sc *scopes, fake, tHat, eps2, cond, mask *Node) *Node {
	var adv *Node
	for _, lg := range a.logits(sc, fake, tHat, noiseBlock(eps2, 1), cond) {
		per := losses.NonSaturatingGenerator(lg)
		if a.lc.GenLoss == "hinge" {
			per = losses.HingeGenerator(lg)
		}
		if mask == nil {
			adv = addOrSet(adv, ReduceAllMean(per))
			continue
		}
		adv = addOrSet(adv, maskedMean(ReduceMean(per, 1), mask))
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
