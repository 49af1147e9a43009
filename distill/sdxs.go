package distill

import (
	"fmt"
	"math/rand/v2"
	"slices"
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

// CorrectiveScope holds SDXS's learned manifold corrective under the trainable /disc scope:
// /disc/corrective/..., a copy of the teacher trained on the student's outputs.
const CorrectiveScope = "corrective"

// SDXS is the one-step distillation of Song et al., "SDXS: Real-Time One-Step Latent Diffusion
// Models with Image Conditions" (arXiv 2403.16627), here in pixel space:
//
//   - Miniaturization (§3.2): the student is the teacher's U-Net with the blocks of
//     model.drop_blocks removed, every kept weight copied from the teacher (LoadTeacher).
//   - Feature-matching warm-up (§3.3, eq. 4–5): from stored noise–image pairs (z, x = ODE(z),
//     `fewstep distill pairs`) the student maps z in one step to x̂ = S(z, t_max, c); the loss is
//     ssim_weight·MS-SSIM loss(x̂, x) + mse_weight·‖x̂ − x‖² + fm_weight·Σ_taps FM, where FM compares
//     the frozen teacher's feature maps of x̂ and x, both re-noised at t = fm_t with the same noise
//     (SSIM instead of MSE: MSE pulls a one-step map toward the average of feasible outputs).
//   - Second stage (§3.3, "score distillation with a learned manifold corrective", after
//     Diff-Instruct/VSD and DMD, Yin et al. arXiv 2311.18828 eq. 7): a trainable copy of the teacher
//     (/disc/corrective) learns the diffusion loss on the student's outputs; at a random t the
//     student is pushed along D_corrective(x_t) − D_teacher(x_t) (x0-space, guided teacher),
//     normalized per example by mean|x̂ − D_teacher(x_t)|, through the surrogate
//     ½‖x̂ − sg(x̂ − g)‖². It starts at step sdxs.sd_start; sd_weight 0 keeps the warm-up only.
//
// The student has an EMA; all randomness comes from the run's checkpointed PCG.
type SDXS struct {
	cfg     Config
	sc      SDXSConfig
	tMax    float64
	student *models.Denoiser
	teacher *models.Denoiser
	tNet    models.Backbone
	classes int
	latent  bool // latent data: x̂0 is not clipped (clipData)
	cStep   *trainer.Step
	gStep   *trainer.Step
}

// NewSDXS returns the trainer.MethodFactory of an SDXS run. Training data must be noise–image
// pairs (data.noise: true).
func NewSDXS(cfg Config, sc SDXSConfig, teacher Teacher) trainer.MethodFactory {
	return func(backend compute.Backend, store *model.Store, job trainer.Job, resumed bool) (trainer.Method, error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := sc.Validate(teacher.Model.TapNames()); err != nil {
			return nil, err
		}
		if !job.Data.Noise {
			return nil, fmt.Errorf("data.noise: sdxs trains on noise–image pairs; set data.noise: true and data.train to a `fewstep distill pairs` file")
		}
		if h, w, _ := job.InputShape(); sc.SSIMWeight > 0 && min(h, w)>>(sc.SSIMScales-1) < sc.SSIMWindow {
			return nil, fmt.Errorf("sdxs.ssim_scales: %d scales of a %d×%d input leave maps smaller than sdxs.ssim_window %d (a latent input is small: use fewer scales or a smaller window)",
				sc.SSIMScales, h, w, sc.SSIMWindow)
		}
		for _, b := range teacher.Model.DropBlocks {
			if !job.Model.Dropped(b) {
				return nil, fmt.Errorf("model.drop_blocks: the teacher (%s) lacks block %s, so the student must drop it too", teacher.Dir, b)
			}
		}
		s := &SDXS{cfg: cfg, sc: sc, tMax: job.Diffusion.TMax, classes: job.Model.NumClasses, latent: job.Latent()}
		nets, err := prepareStudent(store, cfg, teacher, job, resumed)
		if err != nil {
			return nil, err
		}
		s.student, s.teacher, s.tNet = nets.student, nets.teacher, nets.tNet
		if sc.SDWeight > 0 {
			if !resumed {
				if err := copyScope(store, TeacherScope, trainer.DiscScope+"/"+CorrectiveScope); err != nil {
					return nil, err
				}
			}
			ctc := job.Trainer
			ctc.LR = sc.CorrectiveLR
			if s.cStep, err = trainer.NewTermsStep(backend, store, ctc, trainer.DiscScope, false, s.correctiveLoss); err != nil {
				return nil, err
			}
		}
		if s.gStep, err = trainer.NewTermsStep(backend, store, job.Trainer, trainer.ModelScope, true, s.studentLoss); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// copyScope copies every variable /from/... to /to/... (non-trainable flags are reset by
// trainer.MarkTrainable).
func copyScope(store *model.Store, from, to string) error {
	var n int
	for v := range store.IterVariables() {
		rest, ok := strings.CutPrefix(v.Path(), "/"+from+"/")
		if !ok {
			continue
		}
		val, err := v.Value()
		if err != nil {
			return err
		}
		clone, err := val.LocalClone()
		if err != nil {
			return err
		}
		if _, err := store.CreateVariable("/"+to+"/"+rest, clone); err != nil {
			return fmt.Errorf("copying %s to /%s: %w", v.Path(), to, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no /%s weights to copy to /%s", from, to)
	}
	trainer.MarkTrainable(store)
	return nil
}

// inputs returns the step inputs (z, x, cond, ε_fm, t_sd, ε_sd, sd_on): the stored noise z and
// image x of each pair, noise for the feature-matching re-noising, the score-distillation time
// t_sd ~ U(sd_t_min, sd_t_max)·t_max and its noise, and whether the second stage is on.
func (s *SDXS) inputs(step int, b *trainer.Batch, rng *rand.Rand) []*tensors.Tensor {
	normal := func() *tensors.Tensor { return normalImages(b, rng) }
	tSD := make([]float32, b.B)
	for i := range tSD {
		tSD[i] = float32((s.sc.SDTMin + (s.sc.SDTMax-s.sc.SDTMin)*rng.Float64()) * s.tMax)
	}
	on := float32(0)
	if s.sc.SDWeight > 0 && step >= s.sc.SDStart {
		on = 1
	}
	return []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(b.Noise, b.B, b.H, b.W, b.C),
		tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C),
		b.CondTensor(),
		normal(), tensors.FromFlatDataAndDimensions(tSD, b.B), normal(), tensors.FromScalar(on)}
}

// Step runs the corrective's update (in the second stage), then the student's. Terms: ssim, mse,
// fm, sd (the student's), c_loss (the corrective's diffusion loss).
func (s *SDXS) Step(step int, b *trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	if b.Noise == nil {
		return trainer.StepResult{}, fmt.Errorf("sdxs: the batch has no stored noise (data.noise)")
	}
	terms := map[string]float64{}
	if s.cStep != nil && step >= s.sc.SDStart {
		c, err := s.cStep.RunInputs(step-s.sc.SDStart, s.inputs(step, b, rng)...)
		if err != nil {
			return c, fmt.Errorf("sdxs corrective: %w", err)
		}
		if !c.Applied {
			return c, nil
		}
		for k, v := range c.Terms {
			terms[k] = v
		}
	}
	g, err := s.gStep.RunInputs(step, s.inputs(step, b, rng)...)
	if err != nil {
		return g, fmt.Errorf("sdxs student: %w", err)
	}
	for k, v := range g.Terms {
		terms[k] = v
	}
	g.Terms = terms
	return g, nil
}

// studentX0 is the one-step output x̂ = S(z, t_max, c): z, x̂: [B, H, W, C].
func (s *SDXS) studentX0(sc *scopes, z, cond *Node) *Node {
	t := Const(z.Graph(), slices.Repeat([]float32{float32(s.tMax)}, z.Shape().Dimensions[0]))
	x0hat, _ := s.student.Denoise(sc.get(trainer.ModelScope), z, t, cond)
	return x0hat
}

// featureMatching is Σ_taps of losses.FeatureMatching between the teacher's features of x̂ and x,
// both re-noised at fm_t with the same ε (one batch of 2B through the teacher). → [B].
func (s *SDXS) featureMatching(sc *scopes, x0hat, x, cond, eps *Node) *Node {
	bsz := x.Shape().Dimensions[0]
	t := Const(x.Graph(), slices.Repeat([]float32{float32(s.sc.FMTime * s.tMax)}, bsz))
	alpha, sigma := s.teacher.Schedule.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	noisy := func(v *Node) *Node { return Add(Mul(alpha, v), Mul(sigma, eps)) }
	both := Concatenate([]*Node{noisy(x0hat), noisy(x)}, 0)
	feats := s.tNet.Features(sc.get(TeacherScope), both, Concatenate([]*Node{t, t}, 0), Concatenate([]*Node{cond, cond}, 0), s.sc.FMTaps)
	var fm *Node
	for _, f := range feats { // [C, 2B, h, w]
		fake, real := Slice(f, AxisRange(), AxisRange(0, bsz)), Slice(f, AxisRange(), AxisRange(bsz, 2*bsz))
		fm = addOrSet(fm, losses.FeatureMatching(fake, real, 1))
	}
	return fm
}

// studentLoss: ssim_weight·MS-SSIM loss + mse_weight·MSE + fm_weight·FM + sd_on·sd_weight·SD.
func (s *SDXS) studentLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	z, x, cond, epsFM, tSD, epsSD, on := in[0], in[1], in[2], in[3], in[4], in[5], in[6]
	sc := newScopes(root)
	x0hat := s.studentX0(sc, z, cond)
	ssim := ReduceAllMean(losses.MultiScaleSSIMLoss(x0hat, x, s.sc.SSIM()))
	mse := ReduceAllMean(losses.MeanSquared(x0hat, x))
	loss := Add(MulScalar(ssim, s.sc.SSIMWeight), MulScalar(mse, s.sc.MSEWeight))
	terms := map[string]*Node{"ssim": ssim, "mse": mse}
	if s.sc.FMWeight > 0 {
		fm := ReduceAllMean(s.featureMatching(sc, x0hat, x, cond, epsFM))
		loss = Add(loss, MulScalar(fm, s.sc.FMWeight))
		terms["fm"] = fm
	}
	if s.sc.SDWeight > 0 {
		sd := ReduceAllMean(s.scoreDistillation(sc, x0hat, cond, tSD, epsSD))
		loss = Add(loss, Mul(on, MulScalar(sd, s.sc.SDWeight)))
		terms["sd"] = sd
	}
	return loss, terms
}

// scoreDistillation is the per-example surrogate ½·mean (x̂ − sg(x̂ − g))² whose gradient in x̂ is
// g = (D_corr(x_t) − D_teacher(x_t)) / mean|x̂ − D_teacher(x_t)|, x_t = α x̂ + σ ε (DMD eq. 7–8).
func (s *SDXS) scoreDistillation(sc *scopes, x0hat, cond, t, eps *Node) *Node {
	alpha, sigma := s.teacher.Schedule.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	xt := StopGradient(Add(Mul(alpha, x0hat), Mul(sigma, eps)))
	w := Scalar(xt.Graph(), dtypes.Float32, s.sc.SDCFG)
	real, _ := sampling.GuidedX0Eps(s.teacher, sc.get(TeacherScope), xt, t, cond, w, s.classes, s.sc.SDCFG != 1)
	fake, _ := s.teacher.Denoise(sc.get(trainer.DiscScope).In(CorrectiveScope), xt, t, cond)
	real, fake = clipData(real, s.latent), clipData(fake, s.latent)
	norm := MaxScalar(ReduceMean(Abs(Sub(x0hat, real)), 1, 2, 3), 1e-3) // [B]
	g := StopGradient(Div(Sub(fake, real), ExpandAxes(norm, 1, 2, 3)))
	return MulScalar(losses.MeanSquared(x0hat, StopGradient(Sub(x0hat, g))), 0.5)
}

// correctiveLoss is the diffusion loss (losses.Diffusion, the teacher's parameterization) of the
// corrective on the student's one-step outputs, held fixed. Term: c_loss.
func (s *SDXS) correctiveLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	z, cond, tSD, epsSD := in[0], in[2], in[4], in[5]
	sc := newScopes(root)
	x0hat := StopGradient(clipData(s.studentX0(sc, z, cond), s.latent))
	l := ReduceAllMean(losses.Diffusion(s.teacher, sc.get(trainer.DiscScope).In(CorrectiveScope), x0hat, epsSD, tSD, cond))
	return l, map[string]*Node{"c_loss": l}
}
