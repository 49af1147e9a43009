package distill

import (
	"fmt"
	"math/rand/v2"

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

// ImagineFlash is backward distillation with the shifted reconstruction loss (Kohler et al.,
// "Imagine Flash: Accelerating Emu Diffusion Models with Backward Distillation", arXiv 2405.05224):
//
//   - Backward distillation (§3.1, eq. 5–6): for each example a schedule t_0 = t_max > … > t_{K'−1}
//     and a step k are drawn; the student runs its own deterministic sampling steps from pure
//     noise x_T (DDIM, x_{t_{j+1}} = α_{j+1}·x̂0 + σ_{j+1}·ε̂, or renoise with fresh noise:
//     imagine_flash.path_sampler; no gradient) down to x_{t_k} and then
//     predicts x̂0 = S(x_{t_k}, t_k, c) with gradient. The data image never enters the student's
//     input, so no ground-truth signal leaks into it at any t (the forward x_t = α x0 + σ ε would
//     carry x0's low frequencies even at t_max of a schedule without zero terminal SNR). The
//     forward baseline (imagine_flash.mode: forward) feeds x_{t_k} = α x0 + σ x_T instead.
//   - Shifted reconstruction loss (§3.2, eq. 7): x̂0 is re-noised to τ = shift(t_k) along the
//     student's own noise direction ε̂ (the student's state shifted from t_k to τ; at τ = t_k the
//     teacher sees exactly the student's input, as the paper's teacher and student share x_{t_k}),
//     the frozen teacher solves x_τ back to x0 (imagine_flash.teacher_steps guided DDIM steps) and
//     the loss is d(x̂0, sg(teacher solve)). Re-noising with fresh noise instead
//     (imagine_flash.renoise: fresh) makes the target random given x̂0, and MSE then pulls x̂0 to
//     its average: measured here, dim digits, and with a low τ the blank image as a fixed point. shift is increasing, so at high t_k the
//     re-noising at high τ keeps only x̂0's coarse layout and the teacher redraws the global
//     structure (semantics, class) around it; at low t_k, τ is low, x̂0's structure survives and
//     the teacher only redraws fine detail and high frequencies.
//   - Noise correction (§3.3): where the path starts at t = t_max, the first step of an
//     eps-prediction student replaces ε̂ by the true x_T (sampling.ClipAndCorrect, the same code
//     the samplers run); imagine_flash.noise_correction as sample.noise_correction.
//   - Optionally LADD's adversarial term on x̂0 (the same heads, arXiv 2403.12015 §3.2), weight
//     imagine_flash.adv_weight, heads trained as in LADD with the ladd: section's settings.
//
// The student has an EMA; all randomness comes from the run's checkpointed PCG (exact resume).
type ImagineFlash struct {
	cfg       Config
	fc        IFConfig
	lc        LADDConfig
	tMax      float64
	schedules [][]float64
	kMax      int
	student   *models.Denoiser
	teacher   *models.Denoiser
	adv       *adversary
	classes   int
	latent    bool // latent data: x̂0 is not clipped (clipData)
	nc        bool
	dStep     *trainer.Step
	gStep     *trainer.Step
}

// NewImagineFlash returns the trainer.MethodFactory of an Imagine Flash run; lc configures the
// heads of the optional adversarial term.
func NewImagineFlash(cfg Config, fc IFConfig, lc LADDConfig, teacher Teacher) trainer.MethodFactory {
	return func(backend compute.Backend, store *model.Store, job trainer.Job, resumed bool) (trainer.Method, error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := fc.Validate(); err != nil {
			return nil, err
		}
		if fc.AdvWeight > 0 {
			if err := lc.Validate(teacher.Model.TapNames()); err != nil {
				return nil, err
			}
		}
		f := &ImagineFlash{cfg: cfg, fc: fc, lc: lc, tMax: job.Diffusion.TMax, classes: job.Model.NumClasses, latent: job.Latent(),
			schedules: fc.Schedules(cfg, job.Diffusion.TMax)}
		for _, s := range f.schedules {
			f.kMax = max(f.kMax, len(s))
		}
		nets, err := prepareStudent(store, cfg, teacher, job, resumed)
		if err != nil {
			return nil, err
		}
		f.student, f.teacher = nets.student, nets.teacher
		f.nc = fc.NoiseCorrection == "on" || (fc.NoiseCorrection == "auto" && f.student.Prediction == models.PredEps)
		if fc.AdvWeight > 0 {
			f.adv = newAdversary(lc, nets.teacher, nets.tNet, teacher, job.Seed, f.classes)
			if f.dStep, err = newHeadsStep(backend, store, job.Trainer, lc, f.headsLoss); err != nil {
				return nil, err
			}
		}
		if f.gStep, err = trainer.NewTermsStep(backend, store, job.Trainer, trainer.ModelScope, true, f.studentLoss); err != nil {
			return nil, err
		}
		return f, nil
	}
}

// inputs draws each example's schedule and step k, and the noises of one update, and returns the
// step inputs (x0, x_T, times [B, kMax], k [B], t_k [B], τ [B], nc [B], cond, ε_τ, t̂, ε', z
// [max(kMax−1, 1), B, H, W, C] the renoise path's step noises); a
// schedule shorter than kMax is padded with its last time (never reached: k < K').
func (f *ImagineFlash) inputs(b *trainer.Batch, rng *rand.Rand) []*tensors.Tensor {
	times := make([]float32, b.B*f.kMax)
	k := make([]int32, b.B)
	tK, tau, nc := make([]float32, b.B), make([]float32, b.B), make([]float32, b.B)
	for i := range b.B {
		s := f.schedules[rng.IntN(len(f.schedules))]
		for j := range f.kMax {
			times[i*f.kMax+j] = float32(s[min(j, len(s)-1)])
		}
		k[i] = int32(rng.IntN(len(s)))
		tK[i] = float32(s[k[i]])
		tau[i] = float32(f.fc.ShiftTime(s[k[i]], f.tMax))
		if f.nc && s[0] == f.tMax {
			nc[i] = 1
		}
	}
	normal := func() *tensors.Tensor { return normalImages(b, rng) }
	in := []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(times, b.B, f.kMax),
		tensors.FromFlatDataAndDimensions(k, b.B),
		tensors.FromFlatDataAndDimensions(tK, b.B),
		tensors.FromFlatDataAndDimensions(tau, b.B),
		tensors.FromFlatDataAndDimensions(nc, b.B),
		b.CondTensor(),
		normal()}
	if f.adv != nil {
		tHat, eps2 := f.adv.noise(b, rng)
		in = append(in, tHat, eps2)
	} else {
		in = append(in, tensors.FromFlatDataAndDimensions(make([]float32, b.B), b.B), normal())
	}
	nz := max(f.kMax-1, 1) // the fresh noise of each renoise path step
	z := make([]float32, nz*len(b.X0))
	if f.fc.PathSampler == "renoise" {
		for i := range z {
			z[i] = float32(rng.NormFloat64())
		}
	}
	return append(in, tensors.FromFlatDataAndDimensions(z, nz, b.B, b.H, b.W, b.C))
}

// Step runs ladd.head_steps head updates (with the adversarial term), then one student update.
// Terms: srl (the mean loss), srl_k<j> (its mean over the examples at student step j = 1…kMax),
// g_adv and the heads' d_* when adversarial.
func (f *ImagineFlash) Step(step int, b *trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	terms := map[string]float64{}
	if f.adv != nil {
		var d trainer.StepResult
		var err error
		terms, d, err = headUpdates(f.dStep, step, f.lc.HeadSteps, func() []*tensors.Tensor { return f.inputs(b, rng) })
		if err != nil || !d.Applied {
			return d, wrapErr("imagine_flash heads", err)
		}
	}
	g, err := f.gStep.RunInputs(step, f.inputs(b, rng)...)
	if err != nil {
		return g, fmt.Errorf("imagine_flash student: %w", err)
	}
	for k, v := range g.Terms {
		terms[k] = v
	}
	g.Terms = terms
	return g, nil
}

// column returns times[:, j] as [B].
func column(times *Node, j int) *Node {
	return Reshape(Slice(times, AxisRange(), AxisElem(j)), times.Shape().Dimensions[0])
}

// studentInput is the student's input at its step k (eq. 5): backward mode runs the student's own
// sampling steps (imagine_flash.path_sampler) from x_T along each example's times (no gradient),
// keeping the iterate at step k; x0 is not read. Forward mode is α(t_k)·x0 + σ(t_k)·x_T. Where
// nc = 1 the first step uses noise correction. x0, xT: [B, H, W, C]; times: [B, kMax]; k: [B]
// int32; tK, nc: [B]; z: [max(kMax−1, 1), B, H, W, C] → [B, H, W, C].
func (f *ImagineFlash) studentInput(sc *scopes, x0, xT, times, k, tK, nc, cond, z *Node) *Node {
	sched := f.student.Schedule
	if f.fc.Mode == "forward" {
		alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(tK, 1, 2, 3))
		return Add(Mul(alpha, x0), Mul(sigma, xT))
	}
	x, sel := xT, xT
	ncFirst, ncOff := ExpandAxes(nc, 1, 2, 3), ZerosLike(ExpandAxes(nc, 1, 2, 3)) // noise correction: first step only
	for j := 0; j+1 < f.kMax; j++ {
		var zj *Node
		if f.fc.PathSampler == "renoise" {
			zj = Reshape(Slice(z, AxisElem(j)), xT.Shape().Dimensions...)
		}
		ncj := ncOff
		if j == 0 {
			ncj = ncFirst
		}
		x = f.pathStep(sc, x, column(times, j), column(times, j+1), cond, ncj, zj)
		at := ExpandAxes(ConvertDType(Equal(k, Scalar(k.Graph(), dtypes.Int32, j+1)), dtypes.Float32), 1, 2, 3)
		sel = Add(sel, Mul(at, Sub(x, sel)))
	}
	return sel
}

// pathStep is one of the student's sampling steps from t to s, without gradient: x̂0, ε̂ from the
// student, x̂0 clipped (sampling.ClipAndCorrect, noise correction where nc = 1), then
// x_s = α(s)·x̂0 + σ(s)·ε̂ (DDIM, eta = 0), or with fresh noise z ≠ nil x_s = α(s)·x̂0 + σ(s)·z
// (the renoise sampler). x, z: [B, H, W, C]; t, s: [B]; nc: [B, 1, 1, 1].
func (f *ImagineFlash) pathStep(sc *scopes, x, t, s, cond, nc, z *Node) *Node {
	sched := f.student.Schedule
	x0hat, epsHat := f.student.Denoise(sc.get(trainer.ModelScope), x, t, cond)
	x0hat, epsHat = sampling.ClipAndCorrect(sched, x, x0hat, epsHat, t, nc, !f.latent)
	if z != nil {
		epsHat = z
	}
	alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(s, 1, 2, 3))
	return StopGradient(Add(Mul(alpha, x0hat), Mul(sigma, epsHat)))
}

// studentX0 is x̂0 = S(x_{t_k}, t_k, c) on the student's input at step k, with gradient.
func (f *ImagineFlash) studentX0(sc *scopes, in []*Node) *Node {
	x0hat, _ := f.studentX0Input(sc, in)
	return x0hat
}

// studentX0Input is studentX0 and the student's input x_{t_k}: [B, H, W, C] each.
func (f *ImagineFlash) studentX0Input(sc *scopes, in []*Node) (x0hat, x *Node) {
	x0, xT, times, k, tK, nc, cond := in[0], in[1], in[2], in[3], in[4], in[6], in[7]
	x = f.studentInput(sc, x0, xT, times, k, tK, nc, cond, in[11])
	x0hat, _ = f.student.Denoise(sc.get(trainer.ModelScope), x, tK, cond)
	return x0hat, x
}

// shifted is the teacher's input of the shifted reconstruction loss: the student's state moved
// from t_k to τ. With imagine_flash.renoise "path" it keeps the student's own noise direction,
// x_τ = α(τ)·x̂0 + σ(τ)·ε̂ with ε̂ = (x_{t_k} − α(t_k)·x̂0)/σ(t_k) and x̂0 clipped (at τ = t_k this is
// x_{t_k} itself, the input both networks share); with "fresh" it uses new noise ε_τ. Both x̂0 and
// ε̂ are held fixed. x0hat, x, epsTau: [B, H, W, C]; tK, tau: [B].
func (f *ImagineFlash) shifted(x0hat, x, tK, tau, epsTau *Node) *Node {
	sched := f.teacher.Schedule
	x0c := StopGradient(clipData(x0hat, f.latent))
	eps := epsTau
	if f.fc.Renoise == "path" {
		alphaT, sigmaT := sched.AlphaSigmaNode(ExpandAxes(tK, 1, 2, 3))
		eps = StopGradient(Div(Sub(x, Mul(alphaT, x0c)), MaxScalar(sigmaT, 1e-8)))
	}
	alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(tau, 1, 2, 3))
	return Add(Mul(alpha, x0c), Mul(sigma, eps))
}

// studentLoss is mean_b d(x̂0, sg(teacher solve from the shifted state x_τ at τ)) (eq. 7) plus
// adv_weight·(LADD generator loss on x̂0). Terms: srl, srl_k1…srl_k<kMax>, g_adv.
func (f *ImagineFlash) studentLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	k, tK, tau, cond, epsTau, tHat, eps2 := in[3], in[4], in[5], in[7], in[8], in[9], in[10]
	sc := newScopes(root)
	x0hat, x := f.studentX0Input(sc, in)
	xTau := f.shifted(x0hat, x, tK, tau, epsTau)
	target := teacherSolve(f.teacher, sc, xTau, tau, cond, f.fc.TeacherSteps, f.fc.TeacherCFG, f.fc.TeacherGuidanceInterval, f.classes, f.latent)
	per := losses.ShiftedReconstruction(x0hat, target, f.fc.Distance, f.fc.HuberC) // [B]
	loss := ReduceAllMean(per)
	terms := map[string]*Node{"srl": loss}
	for j := range f.kMax {
		m := ConvertDType(Equal(k, Scalar(k.Graph(), dtypes.Int32, j)), dtypes.Float32)
		terms[fmt.Sprintf("srl_k%d", j+1)] = Div(ReduceAllSum(Mul(m, per)), MaxScalar(ReduceAllSum(m), 1))
	}
	if f.adv != nil {
		adv := f.adv.genLoss(sc, x0hat, tHat, eps2, cond, nil)
		loss = Add(loss, MulScalar(adv, f.fc.AdvWeight))
		terms["g_adv"] = adv
	}
	return loss, terms
}

// headsLoss trains the heads on the data x0 (real) against the student's x̂0 on its path (fake).
func (f *ImagineFlash) headsLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	sc := newScopes(root)
	fake := StopGradient(f.studentX0(sc, in))
	return f.adv.discLoss(sc, in[0], fake, in[9], in[10], in[7], nil, nil, nil)
}
