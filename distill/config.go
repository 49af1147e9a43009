package distill

import (
	"fmt"
	"math"
	"slices"

	"github.com/fewstep/fewstep/losses"
	"github.com/fewstep/fewstep/sampling"
)

// Config is the `distill:` section: which method distills which teacher into how many steps.
type Config struct {
	// Method is the distillation method: ladd (arXiv 2403.12015), imagine_flash (arXiv 2405.05224),
	// sdxs (arXiv 2403.16627), lcm (arXiv 2310.04378) or perflow (arXiv 2405.07510).
	Method string `mapstructure:"method"`
	// Teacher is the teacher's run directory; its config gives the architecture and schedule.
	Teacher string `mapstructure:"teacher"`
	// TeacherEMA reads the teacher's EMA weights (else its raw weights).
	TeacherEMA bool `mapstructure:"teacher_ema"`
	// StudentSteps is K, the number of sampling steps the student is trained for (1–4).
	StudentSteps int `mapstructure:"student_steps"`
	// StudentTimes are the student's K timesteps, descending in (0, t_max]; empty: the trailing
	// spacing t_k = t_max·(K−k)/K, which `fewstep sample -steps K` (and 1, 2 when they divide K)
	// reproduces.
	StudentTimes []float64 `mapstructure:"student_times"`
}

// Methods lists the accepted values of distill.method.
var Methods = []string{"ladd", "imagine_flash", "sdxs", "lcm", "perflow"}

// DefaultConfig: LADD of the MNIST teacher into a 4-step student, teacher EMA weights.
func DefaultConfig() Config {
	return Config{Method: "ladd", Teacher: "runs/mnist-teacher", TeacherEMA: true, StudentSteps: 4}
}

// Validate checks every key; errors name the key as "distill.<key>".
func (c Config) Validate() error {
	if !slices.Contains(Methods, c.Method) {
		return fmt.Errorf("distill.method: unknown value %q (known: %v)", c.Method, Methods)
	}
	if c.Teacher == "" {
		return fmt.Errorf("distill.teacher: the teacher's run directory is required")
	}
	if c.StudentSteps < 1 || c.StudentSteps > 8 {
		return fmt.Errorf("distill.student_steps: must be in [1, 8], got %d", c.StudentSteps)
	}
	if len(c.StudentTimes) != 0 {
		if len(c.StudentTimes) != c.StudentSteps {
			return fmt.Errorf("distill.student_times: %d times for %d student_steps", len(c.StudentTimes), c.StudentSteps)
		}
		for i, t := range c.StudentTimes {
			if !(t > 0 && t <= 1) || (i > 0 && t >= c.StudentTimes[i-1]) {
				return fmt.Errorf("distill.student_times: want descending times in (0, 1], got %v", c.StudentTimes)
			}
		}
	}
	return nil
}

// Times returns the student's K timesteps for a schedule starting at tMax.
func (c Config) Times(tMax float64) []float64 {
	if len(c.StudentTimes) != 0 {
		return slices.Clone(c.StudentTimes)
	}
	return sampling.UniformTimes(c.StudentSteps, tMax)[:c.StudentSteps] // the trailing times, without 0
}

// LADDConfig is the `ladd:` section (Sauer et al., arXiv 2403.12015).
type LADDConfig struct {
	// TLocation and TScale are m and s of the logit-normal law of the re-noising time
	// t̂ = sigmoid(m + s·n), n ~ N(0, 1) (§3.2, Fig. 4: m > 0 favours high noise, global structure).
	TLocation float64 `mapstructure:"t_location"`
	TScale    float64 `mapstructure:"t_scale"`
	// Taps are the teacher's feature maps the heads read (models.Config.TapNames: down<l>, mid, up<l>).
	Taps []string `mapstructure:"taps"`
	// HeadChannels is the width of each discriminator head.
	HeadChannels int `mapstructure:"head_channels"`
	// HeadOutput is patch (one logit per feature-map location, the losses averaged over them) or
	// pooled (one logit per image, the mean of the patch logits).
	HeadOutput string `mapstructure:"head_output"`
	// GenLoss is the student's adversarial loss: non_saturating (−log σ(D)) or hinge (−D).
	GenLoss string `mapstructure:"gen_loss"`
	// AdvWeight scales the adversarial term of the student's loss.
	AdvWeight float64 `mapstructure:"adv_weight"`
	// DistillWeight scales the optional distillation term ‖x̂0 − teacher solve‖² (§3.3); 0 = off.
	DistillWeight float64 `mapstructure:"distill_weight"`
	// DistillSteps is the number of teacher DDIM steps from the student's input to x0 for that term.
	DistillSteps int `mapstructure:"distill_steps"`
	// DistillCFG is the guidance scale of that teacher solve.
	DistillCFG float64 `mapstructure:"distill_cfg"`
	// DistillGuidanceInterval [lo, hi] limits that guidance to the solve's steps with t in it
	// (arXiv 2404.07724); empty: every step.
	DistillGuidanceInterval []float64 `mapstructure:"distill_guidance_interval"`
	// HeadLR is the heads' AdamW learning rate (same warmup and cosine as trainer.lr).
	HeadLR float64 `mapstructure:"head_lr"`
	// HeadSteps is the number of head updates per student update.
	HeadSteps int `mapstructure:"head_steps"`
	// HeadDepth is the number of [Conv3×3 (stride 2 while the map is larger than 4×4) →
	// GroupNorm → FiLM(t̂) → SiLU] blocks of each head before its 1×1 logit conv, as the heads of
	// public LADD/DMD2 implementations (there 4×4 stride-2 convs; odd kernels here, gomlx-notes
	// trap 1). 0 is the one-conv head of part 5 (Conv3×3 → FiLM → SiLU, no normalization).
	HeadDepth int `mapstructure:"head_depth"`
	// HeadWarmup is the number of student updates during which the adversarial term is off: the
	// heads train alone first (and the student on the distillation term, if any).
	HeadWarmup int `mapstructure:"head_warmup"`
	// R1Weight scales a finite-difference R1 penalty on real inputs (Mescheder et al. arXiv
	// 1801.04406): mean (D(x + σ·n) − D(x))²/σ² ≈ ‖∇ₓD‖², σ = R1Sigma, n ~ N(0, I); 0 = off.
	R1Weight float64 `mapstructure:"r1_weight"`
	R1Sigma  float64 `mapstructure:"r1_sigma"`
	// TDist is the law of t̂: logit_normal (t_location, t_scale) or uniform over t_range.
	TDist string `mapstructure:"t_dist"`
	// TRange [lo, hi] bounds t̂: logit-normal draws are clamped to it, uniform draws fill it.
	TRange []float64 `mapstructure:"t_range"`
	// SameNoise re-noises real and fake with one shared ε' (LADD); false draws independent noise
	// (SANA-Sprint).
	SameNoise bool `mapstructure:"same_noise"`
	// FreezeStudent trains only the heads (a diagnosis: can they separate the data from the
	// current student's samples? see the d_acc_* terms per t̂ bucket).
	FreezeStudent bool `mapstructure:"freeze_student"`
	// StudentTWeights are the probabilities of the student's K timesteps t_s (distill.student_steps,
	// highest noise first), normalised; empty: uniform (part 5). Only the t_s = t_max fakes carry
	// the one-step student's defects: at low t_s the student's x̂0 is nearly its input's x0 and the
	// heads cannot tell it from the real image, so weighting t_max up gives them more to learn from.
	StudentTWeights []float64 `mapstructure:"student_t_weights"`
	// AdvTMin applies the student's adversarial term only to examples with t_s >= it (0 = all):
	// the fakes from lower t_s are the data they were noised from and the heads cannot judge them
	// (d_acc_fake/s<k>), so their adversarial gradient is noise; they keep the distillation term.
	AdvTMin float64 `mapstructure:"adv_t_min"`
	// HeadTMin trains the heads on the fakes with t_s >= it only (0 = all; the reals are all used),
	// and d_acc_fake / d_gap measure those fakes: with adv_t_min the lower-t_s fakes are nearly the
	// data they were noised from, so calling them fake is label noise for the heads and their
	// accuracy says nothing about the fakes the adversarial term is applied to.
	HeadTMin float64 `mapstructure:"head_t_min"`
	// AdaptiveWeight scales the student's adversarial term by λ = ‖∇_W L_distill‖ / (‖∇_W L_adv‖ + 1e-4),
	// W the student's output layer, clamped to [0, 1e4] and not differentiated — VQGAN's adaptive
	// weight (Esser et al., arXiv 2012.09841, eq. 7), as LDM's autoencoder uses it — so that
	// adv_weight is the ratio of the two gradients' norms there instead of a hand-set scale that
	// must shrink as the learning rate grows (README, LADD e8–e10). Needs distill_weight > 0.
	AdaptiveWeight bool `mapstructure:"adaptive_weight"`
}

// TDists lists the accepted values of ladd.t_dist.
var TDists = []string{"logit_normal", "uniform"}

// GenLosses and HeadOutputs list the accepted values of ladd.gen_loss and ladd.head_output.
var (
	GenLosses   = []string{"non_saturating", "hinge"}
	HeadOutputs = []string{"patch", "pooled"}
)

// DefaultLADDConfig: t̂ ~ logit-normal(1, 1), heads on encoder, middle and decoder features,
// non-saturating generator loss, no distillation term, one head update per student update.
func DefaultLADDConfig() LADDConfig {
	return LADDConfig{TLocation: 1, TScale: 1, Taps: []string{"down1", "down2", "mid", "up2", "up1"}, HeadChannels: 32, HeadOutput: "pooled",
		GenLoss: "non_saturating", AdvWeight: 1, DistillWeight: 0, DistillSteps: 4, DistillCFG: 2, HeadLR: 2e-4, HeadSteps: 1,
		R1Sigma: 0.01, TDist: "logit_normal", TRange: []float64{1e-4, 1}, SameNoise: true}
}

// Validate checks every key; errors name the key as "ladd.<key>". tapNames are the teacher's.
func (c LADDConfig) Validate(tapNames []string) error {
	if math.IsNaN(c.TLocation) || !(c.TScale > 0) {
		return fmt.Errorf("ladd.t_scale: must be positive, got %g", c.TScale)
	}
	if len(c.Taps) == 0 {
		return fmt.Errorf("ladd.taps: at least one feature tap is needed (known: %v)", tapNames)
	}
	for _, t := range c.Taps {
		if tapNames != nil && !slices.Contains(tapNames, t) {
			return fmt.Errorf("ladd.taps: unknown tap %q (known: %v)", t, tapNames)
		}
	}
	if c.HeadChannels <= 0 {
		return fmt.Errorf("ladd.head_channels: must be positive, got %d", c.HeadChannels)
	}
	if !slices.Contains(HeadOutputs, c.HeadOutput) {
		return fmt.Errorf("ladd.head_output: unknown value %q (known: %v)", c.HeadOutput, HeadOutputs)
	}
	if !slices.Contains(GenLosses, c.GenLoss) {
		return fmt.Errorf("ladd.gen_loss: unknown value %q (known: %v)", c.GenLoss, GenLosses)
	}
	if c.AdvWeight < 0 || c.DistillWeight < 0 || c.AdvWeight+c.DistillWeight == 0 {
		return fmt.Errorf("ladd.adv_weight/distill_weight: must be >= 0 and not both 0, got %g, %g", c.AdvWeight, c.DistillWeight)
	}
	if c.AdaptiveWeight && !(c.DistillWeight > 0) {
		return fmt.Errorf("ladd.adaptive_weight: needs ladd.distill_weight > 0 (λ is the ratio of the distillation and adversarial gradients)")
	}
	if c.DistillSteps < 1 {
		return fmt.Errorf("ladd.distill_steps: must be positive, got %d", c.DistillSteps)
	}
	if c.DistillCFG < 0 {
		return fmt.Errorf("ladd.distill_cfg: must be >= 0, got %g", c.DistillCFG)
	}
	if err := sampling.CheckGuidanceInterval(c.DistillGuidanceInterval); err != nil {
		return fmt.Errorf("ladd.distill_guidance_interval: %w", err)
	}
	if !(c.HeadLR > 0) {
		return fmt.Errorf("ladd.head_lr: must be positive, got %g", c.HeadLR)
	}
	if c.HeadSteps < 1 {
		return fmt.Errorf("ladd.head_steps: must be >= 1, got %d", c.HeadSteps)
	}
	if c.HeadDepth < 0 || c.HeadDepth > 6 {
		return fmt.Errorf("ladd.head_depth: must be in 0..6, got %d", c.HeadDepth)
	}
	if c.HeadWarmup < 0 {
		return fmt.Errorf("ladd.head_warmup: must be >= 0, got %d", c.HeadWarmup)
	}
	if c.R1Weight < 0 || math.IsNaN(c.R1Weight) {
		return fmt.Errorf("ladd.r1_weight: must be >= 0, got %g", c.R1Weight)
	}
	if !(c.R1Sigma > 0) {
		return fmt.Errorf("ladd.r1_sigma: must be positive, got %g", c.R1Sigma)
	}
	if !slices.Contains(TDists, c.TDist) {
		return fmt.Errorf("ladd.t_dist: unknown value %q (known: %v)", c.TDist, TDists)
	}
	if !(c.AdvTMin >= 0 && c.AdvTMin <= 1) {
		return fmt.Errorf("ladd.adv_t_min: must be in [0, 1], got %g", c.AdvTMin)
	}
	if !(c.HeadTMin >= 0 && c.HeadTMin <= 1) {
		return fmt.Errorf("ladd.head_t_min: must be in [0, 1], got %g", c.HeadTMin)
	}
	if err := checkWeights(c.StudentTWeights); err != nil {
		return fmt.Errorf("ladd.student_t_weights: %w", err)
	}
	if len(c.TRange) != 2 || !(c.TRange[0] > 0) || !(c.TRange[0] < c.TRange[1]) || c.TRange[1] > 1 {
		return fmt.Errorf("ladd.t_range: want [lo, hi] with 0 < lo < hi <= 1, got %v", c.TRange)
	}
	return nil
}

// IFConfig is the `imagine_flash:` section (Kohler et al., arXiv 2405.05224).
type IFConfig struct {
	// Mode is backward (§3.1: the student's input is its own sampling iterate from pure noise) or
	// forward (the baseline: the forward-noised x_t = α_t·x0 + σ_t·ε of a data image).
	Mode string `mapstructure:"mode"`
	// StepCounts are the step counts K' the student trains for: each example draws one, with the
	// trailing times t_max·(K'−j)/K' (distill.student_times instead when K' = distill.student_steps);
	// empty: distill.student_steps alone.
	StepCounts []int `mapstructure:"step_counts"`
	// Shift maps the student's time t_k to the re-noising time τ of the shifted reconstruction loss
	// (§3.2): power, τ = shift_min + (shift_max − shift_min)·(t/t_max)^shift_power; or snr, the
	// SNR-shift τ = s·u/(1 + (s−1)·u)·t_max with u = t/t_max and s = shift_factor (s > 1: noisier).
	Shift       string  `mapstructure:"shift"`
	ShiftMin    float64 `mapstructure:"shift_min"`
	ShiftMax    float64 `mapstructure:"shift_max"`
	ShiftPower  float64 `mapstructure:"shift_power"`
	ShiftFactor float64 `mapstructure:"shift_factor"`
	// PathSampler is the student's own sampler on its backward path: ddim (deterministic) or
	// renoise (fresh noise per step, as LADD students sample); sample with the same one.
	PathSampler string `mapstructure:"path_sampler"`
	// Renoise is how x̂0 is moved to τ: path, along the student's own noise estimate ε̂ of its input
	// (deterministic given x_T), or fresh, with new Gaussian noise.
	Renoise string `mapstructure:"renoise"`
	// TeacherSteps and TeacherCFG set the teacher's solve from x_τ to its target: DDIM steps, guidance.
	TeacherSteps int     `mapstructure:"teacher_steps"`
	TeacherCFG   float64 `mapstructure:"teacher_cfg"`
	// TeacherGuidanceInterval [lo, hi] limits the teacher's guidance to solve steps with t in it
	// (arXiv 2404.07724); empty: every step.
	TeacherGuidanceInterval []float64 `mapstructure:"teacher_guidance_interval"`
	// Distance between x̂0 and the target: mse, or pseudo_huber sqrt(mean (x̂0 − y)² + c²) − c with
	// c = huber_c (a per-pixel RMS scale).
	Distance string  `mapstructure:"distance"`
	HuberC   float64 `mapstructure:"huber_c"`
	// NoiseCorrection in the student's training path (§3.3; auto = on for eps-prediction), as
	// sample.noise_correction is at sampling time.
	NoiseCorrection string `mapstructure:"noise_correction"`
	// AdvWeight adds LADD's adversarial term (heads and settings of the ladd: section); 0 = off.
	AdvWeight float64 `mapstructure:"adv_weight"`
}

// IF modes, shifts and distances.
var (
	IFModes     = []string{"backward", "forward"}
	IFShifts    = []string{"power", "snr"}
	IFDistances = []string{"mse", "pseudo_huber"}
	IFRenoise   = []string{"path", "fresh"}
)

// DefaultIFConfig: backward distillation for 1–4 steps, τ = 0.1 + 0.7·t (global structure from the
// teacher at high t, detail at low t), a 4-step CFG-2 teacher solve, MSE, no adversarial term.
func DefaultIFConfig() IFConfig {
	return IFConfig{Mode: "backward", StepCounts: []int{1, 2, 3, 4}, Shift: "power", ShiftMin: 0.1, ShiftMax: 0.8,
		ShiftPower: 1, ShiftFactor: 3, PathSampler: "ddim", Renoise: "path", TeacherSteps: 4, TeacherCFG: 2, Distance: "mse", HuberC: 0.03,
		NoiseCorrection: "auto", AdvWeight: 0}
}

// Validate checks every key; errors name the key as "imagine_flash.<key>".
func (c IFConfig) Validate() error {
	switch {
	case !slices.Contains(IFModes, c.Mode):
		return fmt.Errorf("imagine_flash.mode: unknown value %q (known: %v)", c.Mode, IFModes)
	case !slices.Contains(IFShifts, c.Shift):
		return fmt.Errorf("imagine_flash.shift: unknown value %q (known: %v)", c.Shift, IFShifts)
	case !(c.ShiftMin >= 0 && c.ShiftMin <= c.ShiftMax && c.ShiftMax <= 1):
		return fmt.Errorf("imagine_flash.shift_min/shift_max: want 0 <= min <= max <= 1, got %g, %g", c.ShiftMin, c.ShiftMax)
	case !(c.ShiftPower > 0) || !(c.ShiftFactor > 0):
		return fmt.Errorf("imagine_flash.shift_power/shift_factor: must be positive, got %g, %g", c.ShiftPower, c.ShiftFactor)
	case c.PathSampler != "ddim" && c.PathSampler != "renoise":
		return fmt.Errorf("imagine_flash.path_sampler: unknown value %q (known: [ddim renoise])", c.PathSampler)
	case !slices.Contains(IFRenoise, c.Renoise):
		return fmt.Errorf("imagine_flash.renoise: unknown value %q (known: %v)", c.Renoise, IFRenoise)
	case c.TeacherSteps < 1:
		return fmt.Errorf("imagine_flash.teacher_steps: must be positive, got %d", c.TeacherSteps)
	case c.TeacherCFG < 0:
		return fmt.Errorf("imagine_flash.teacher_cfg: must be >= 0, got %g", c.TeacherCFG)
	case !slices.Contains(IFDistances, c.Distance):
		return fmt.Errorf("imagine_flash.distance: unknown value %q (known: %v)", c.Distance, IFDistances)
	case !(c.HuberC > 0):
		return fmt.Errorf("imagine_flash.huber_c: must be positive, got %g", c.HuberC)
	case !slices.Contains([]string{"auto", "on", "off"}, c.NoiseCorrection):
		return fmt.Errorf("imagine_flash.noise_correction: unknown value %q (known: auto, on, off)", c.NoiseCorrection)
	case c.AdvWeight < 0:
		return fmt.Errorf("imagine_flash.adv_weight: must be >= 0, got %g", c.AdvWeight)
	}
	if err := sampling.CheckGuidanceInterval(c.TeacherGuidanceInterval); err != nil {
		return fmt.Errorf("imagine_flash.teacher_guidance_interval: %w", err)
	}
	for _, k := range c.StepCounts {
		if k < 1 || k > 8 {
			return fmt.Errorf("imagine_flash.step_counts: each must be in [1, 8], got %v", c.StepCounts)
		}
	}
	return nil
}

// ShiftTime is τ = shift(t) of the shifted reconstruction loss for a student time t ∈ (0, t_max].
// power: shift(0) = shift_min·t_max, shift(t_max) = shift_max·t_max; snr: shift(0) = 0,
// shift(t_max) = t_max.
func (c IFConfig) ShiftTime(t, tMax float64) float64 {
	u := min(max(t/tMax, 0), 1)
	if c.Shift == "snr" {
		return c.ShiftFactor * u / (1 + (c.ShiftFactor-1)*u) * tMax
	}
	return (c.ShiftMin + (c.ShiftMax-c.ShiftMin)*math.Pow(u, c.ShiftPower)) * tMax
}

// Schedules returns the student's training schedules, one per step count: for K' = student_steps
// the times of Config.Times, else the trailing times t_max·(K'−j)/K'.
func (c IFConfig) Schedules(dc Config, tMax float64) [][]float64 {
	counts := c.StepCounts
	if len(counts) == 0 {
		counts = []int{dc.StudentSteps}
	}
	var out [][]float64
	for _, k := range counts {
		if k == dc.StudentSteps {
			out = append(out, dc.Times(tMax))
			continue
		}
		out = append(out, sampling.UniformTimes(k, tMax)[:k])
	}
	return out
}

// SDXSConfig is the `sdxs:` section (Song et al., arXiv 2403.16627).
type SDXSConfig struct {
	// SSIMWeight, MSEWeight and FMWeight weigh the warm-up's terms (§3.3): the multi-scale SSIM loss
	// and the pixel MSE between the one-step output and the pair's image, and feature matching.
	SSIMWeight float64 `mapstructure:"ssim_weight"`
	MSEWeight  float64 `mapstructure:"mse_weight"`
	FMWeight   float64 `mapstructure:"fm_weight"`
	// SSIMScales is the number of SSIM scales (equal weights; each halves the image);
	// SSIMWindow the Gaussian window's side (Wang et al. 2004: 11, σ = 1.5).
	SSIMScales int `mapstructure:"ssim_scales"`
	SSIMWindow int `mapstructure:"ssim_window"`
	// FMTaps are the teacher's feature maps compared (models.Config.TapNames), FMTime the small t
	// (fraction of t_max) at which both images are re-noised before the teacher reads them.
	FMTaps []string `mapstructure:"fm_taps"`
	FMTime float64  `mapstructure:"fm_t"`
	// SDWeight weighs the second stage, score distillation with the learned manifold corrective;
	// 0 = warm-up only. SDStart is the student step where it begins.
	SDWeight float64 `mapstructure:"sd_weight"`
	SDStart  int     `mapstructure:"sd_start"`
	// SDCFG is the teacher's guidance scale in the score difference; SDTMin and SDTMax bound its
	// uniform t (fractions of t_max).
	SDCFG  float64 `mapstructure:"sd_cfg"`
	SDTMin float64 `mapstructure:"sd_t_min"`
	SDTMax float64 `mapstructure:"sd_t_max"`
	// CorrectiveLR is the corrective network's AdamW learning rate.
	CorrectiveLR float64 `mapstructure:"corrective_lr"`
}

// DefaultSDXSConfig: SSIM (2 scales, 11×11 window) + feature matching at three depths, warm-up
// only.
func DefaultSDXSConfig() SDXSConfig {
	return SDXSConfig{SSIMWeight: 1, MSEWeight: 0, FMWeight: 1, SSIMScales: 2, SSIMWindow: 11,
		FMTaps: []string{"down1", "mid", "up1"}, FMTime: 0.1, SDWeight: 0, SDStart: 0, SDCFG: 2,
		SDTMin: 0.02, SDTMax: 0.98, CorrectiveLR: 1e-4}
}

// SSIM returns the SSIM constants of the config (Wang et al. 2004, equal scale weights).
func (c SDXSConfig) SSIM() losses.SSIMConfig {
	s := losses.DefaultSSIMConfig()
	s.Window = c.SSIMWindow
	s.ScaleWeights = slices.Repeat([]float64{1}, c.SSIMScales)
	return s
}

// Validate checks every key; errors name the key as "sdxs.<key>". tapNames are the teacher's (nil:
// not checked).
func (c SDXSConfig) Validate(tapNames []string) error {
	switch {
	case c.SSIMWeight < 0 || c.MSEWeight < 0 || c.FMWeight < 0 || c.SDWeight < 0:
		return fmt.Errorf("sdxs.ssim_weight/mse_weight/fm_weight/sd_weight: must be >= 0, got %g, %g, %g, %g", c.SSIMWeight, c.MSEWeight, c.FMWeight, c.SDWeight)
	case c.SSIMWeight+c.MSEWeight+c.FMWeight+c.SDWeight == 0:
		return fmt.Errorf("sdxs: every loss weight is 0")
	case c.SSIMScales < 1 || c.SSIMScales > 4:
		return fmt.Errorf("sdxs.ssim_scales: must be in [1, 4], got %d", c.SSIMScales)
	case c.SSIMWindow < 3 || c.SSIMWindow%2 == 0:
		return fmt.Errorf("sdxs.ssim_window: must be odd and >= 3, got %d", c.SSIMWindow)
	case !(c.FMTime > 0 && c.FMTime <= 1):
		return fmt.Errorf("sdxs.fm_t: must be in (0, 1], got %g", c.FMTime)
	case c.SDStart < 0:
		return fmt.Errorf("sdxs.sd_start: must be >= 0, got %d", c.SDStart)
	case c.SDCFG < 0:
		return fmt.Errorf("sdxs.sd_cfg: must be >= 0, got %g", c.SDCFG)
	case !(c.SDTMin > 0 && c.SDTMin < c.SDTMax && c.SDTMax <= 1):
		return fmt.Errorf("sdxs.sd_t_min/sd_t_max: want 0 < min < max <= 1, got %g, %g", c.SDTMin, c.SDTMax)
	case !(c.CorrectiveLR > 0):
		return fmt.Errorf("sdxs.corrective_lr: must be positive, got %g", c.CorrectiveLR)
	}
	if c.FMWeight > 0 && len(c.FMTaps) == 0 {
		return fmt.Errorf("sdxs.fm_taps: at least one tap is needed when fm_weight > 0 (known: %v)", tapNames)
	}
	for _, t := range c.FMTaps {
		if tapNames != nil && !slices.Contains(tapNames, t) {
			return fmt.Errorf("sdxs.fm_taps: unknown tap %q (known: %v)", t, tapNames)
		}
	}
	return nil
}

// checkWeights accepts an empty list or finite non-negative weights with a positive sum.
func checkWeights(w []float64) error {
	sum := 0.0
	for i, v := range w {
		if !(v >= 0) || math.IsInf(v, 0) {
			return fmt.Errorf("weight %d must be finite and >= 0, got %g", i, v)
		}
		sum += v
	}
	if len(w) > 0 && !(sum > 0) {
		return fmt.Errorf("weights must not all be 0, got %v", w)
	}
	return nil
}
