package sampling

import (
	"fmt"
	"math"
	"slices"
)

// Config is the `sample:` section: the solver, its timestep schedule and guidance, used by sample
// grids during training, `fewstep sample` and `fewstep eval`.
type Config struct {
	// Sampler is the solver: ddim (Song et al., arXiv 2010.02502; stochastic with eta > 0), euler and
	// heun (first/second order on the probability-flow ODE in t; Karras et al., arXiv 2206.00364,
	// Alg. 1), dpmpp-2m (Lu et al., arXiv 2211.01095, Alg. 2) or sde (ancestral sampling of the
	// reverse process, Ho et al. arXiv 2006.11239: DDIM with eta = 1) or renoise (x_s = α_s·x̂0 +
	// σ_s·z with fresh z: the multistep sampling of consistency models, Song et al. arXiv
	// 2303.01469 Alg. 1, and of ADD/LADD students, whose inputs in training are forward-noised data).
	Sampler string `mapstructure:"sampler"`
	// Steps is the number of solver steps.
	Steps int `mapstructure:"steps"`
	// Eta scales the fresh noise of ddim: 0 is deterministic DDIM, 1 the DDPM posterior.
	Eta float64 `mapstructure:"eta"`
	// Spacing chooses the timesteps (see Times): trailing, leading, uniform, karras, logsnr,
	// student (a distilled student's own times) or list.
	Spacing string `mapstructure:"spacing"`
	// Rho is the exponent of the karras spacing (EDM eq. 5; 7 in the paper).
	Rho float64 `mapstructure:"rho"`
	// SigmaMin is the smallest noise level σ/α of the uniform, karras and logsnr spacings and of
	// optimized schedules (EDM's 0.002).
	SigmaMin float64 `mapstructure:"sigma_min"`
	// SigmaMax caps the largest σ/α of the karras and logsnr spacings (EDM's 80); their first step
	// still starts at t_max.
	SigmaMax float64 `mapstructure:"sigma_max"`
	// Timesteps is the explicit list of the list spacing: descending times in (0, t_max], one per step.
	Timesteps []float64 `mapstructure:"timesteps"`
	// ScheduleFile, when set, replaces the spacing with the times of a schedule file (written by
	// `fewstep schedule optimize`); its step count wins over Steps.
	ScheduleFile string `mapstructure:"schedule_file"`
	// CFG is the classifier-free guidance scale w: pred = uncond + w·(cond − uncond); 1 disables it.
	CFG float64 `mapstructure:"cfg"`
	// GuidanceInterval [lo, hi] applies guidance only at steps whose time t lies in it (Kynkäänniemi
	// et al., arXiv 2404.07724); other steps run the conditional model alone. Empty: every step.
	GuidanceInterval []float64 `mapstructure:"guidance_interval"`
	// NoiseCorrection replaces ε̂ by the true initial noise x_T at the first step when it starts at
	// t_max (Imagine Flash, arXiv 2405.05224, §3.3): on, off, or auto (on for distilled
	// eps-prediction students).
	NoiseCorrection string `mapstructure:"noise_correction"`
	// ClipX0 clamps the predicted x̂0 to [-1, 1] at every step (ε̂ is recomputed from it).
	ClipX0 bool `mapstructure:"clip_x0"`
	// PerClass is the number of images per class (grid columns) of the training sample grids.
	PerClass int `mapstructure:"per_class"`
	// Prompts are the rows of a text model's training-time sample grids (one row per prompt,
	// per_class seeds each); empty: the dataset's class names.
	Prompts []string `mapstructure:"prompts"`
	// BatchSize is the number of images generated per executor call.
	BatchSize int `mapstructure:"batch_size"`
	// UseEMA samples with the EMA weights (else the raw trained weights).
	UseEMA bool `mapstructure:"use_ema"`
	// Seed is the seed of the first image; image i uses Seed+i.
	Seed int `mapstructure:"seed"`
}

// DefaultConfig: 50 deterministic DDIM steps on the trailing spacing, CFG 2, 10 images per class, EMA weights.
func DefaultConfig() Config {
	return Config{Sampler: "ddim", Steps: 50, Spacing: "trailing", Rho: 7, SigmaMin: 0.002, SigmaMax: 80,
		CFG: 2, NoiseCorrection: "auto", ClipX0: true, PerClass: 10, BatchSize: 100, UseEMA: true}
}

// Samplers, Spacings and NoiseCorrections list the accepted values.
var (
	Samplers         = []string{"ddim", "euler", "heun", "dpmpp-2m", "sde", "renoise"}
	Spacings         = []string{"trailing", "leading", "uniform", "karras", "logsnr", "student", "list"}
	NoiseCorrections = []string{"auto", "on", "off"}
)

// Validate checks every key; errors name the key as "sample.<key>".
func (c Config) Validate() error {
	if !slices.Contains(Samplers, c.Sampler) {
		return fmt.Errorf("sample.sampler: unknown value %q (known: %v)", c.Sampler, Samplers)
	}
	if !slices.Contains(Spacings, c.Spacing) {
		return fmt.Errorf("sample.spacing: unknown value %q (known: %v)", c.Spacing, Spacings)
	}
	if !slices.Contains(NoiseCorrections, c.NoiseCorrection) {
		return fmt.Errorf("sample.noise_correction: unknown value %q (known: %v)", c.NoiseCorrection, NoiseCorrections)
	}
	if c.Steps <= 0 {
		return fmt.Errorf("sample.steps: must be positive, got %d", c.Steps)
	}
	if !(c.Eta >= 0 && c.Eta <= 1) {
		return fmt.Errorf("sample.eta: must be in [0, 1], got %g", c.Eta)
	}
	if c.Rho <= 0 {
		return fmt.Errorf("sample.rho: must be positive, got %g", c.Rho)
	}
	if !(c.SigmaMin > 0 && c.SigmaMax > c.SigmaMin) {
		return fmt.Errorf("sample.sigma_min/sigma_max: need 0 < sigma_min < sigma_max, got %g, %g", c.SigmaMin, c.SigmaMax)
	}
	if c.Spacing == "list" && c.ScheduleFile == "" {
		if len(c.Timesteps) == 0 {
			return fmt.Errorf("sample.timesteps: the list spacing needs a list of times")
		}
		if err := checkDescending(c.Timesteps, 1); err != nil {
			return fmt.Errorf("sample.timesteps: %w", err)
		}
	}
	if c.CFG < 0 {
		return fmt.Errorf("sample.cfg: must be >= 0, got %g", c.CFG)
	}
	if err := CheckGuidanceInterval(c.GuidanceInterval); err != nil {
		return fmt.Errorf("sample.guidance_interval: %w", err)
	}
	if c.PerClass <= 0 {
		return fmt.Errorf("sample.per_class: must be positive, got %d", c.PerClass)
	}
	if c.BatchSize <= 0 {
		return fmt.Errorf("sample.batch_size: must be positive, got %d", c.BatchSize)
	}
	if c.Seed < 0 {
		return fmt.Errorf("sample.seed: must be >= 0, got %d", c.Seed)
	}
	return nil
}

// checkDescending verifies times strictly decreasing in (0, tMax].
func checkDescending(ts []float64, tMax float64) error {
	for i, t := range ts {
		if !(t > 0 && t <= tMax) || math.IsNaN(t) {
			return fmt.Errorf("time %d is %g, outside (0, %g]", i, t, tMax)
		}
		if i > 0 && t >= ts[i-1] {
			return fmt.Errorf("times must decrease strictly: %g then %g", ts[i-1], t)
		}
	}
	return nil
}

// CheckGuidanceInterval accepts an empty interval (guidance everywhere) or [lo, hi] with
// 0 <= lo <= hi; callers prefix the error with their key.
func CheckGuidanceInterval(gi []float64) error {
	if len(gi) != 0 && (len(gi) != 2 || !(gi[0] >= 0) || !(gi[1] >= gi[0])) {
		return fmt.Errorf("want [lo, hi] with 0 <= lo <= hi, got %v", gi)
	}
	return nil
}

// guidedAt reports whether the step at time t uses guidance.
func (c Config) guidedAt(t float64) bool {
	if c.CFG == 1 {
		return false
	}
	gi := c.GuidanceInterval
	return len(gi) != 2 || (t >= gi[0] && t <= gi[1])
}
