package distill

import (
	"fmt"
	"math"
	"slices"
)

// Config is the `distill:` section: which method distills which teacher into how many steps.
type Config struct {
	// Method is the distillation method: ladd (arXiv 2403.12015).
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
var Methods = []string{"ladd"}

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
	ts := make([]float64, c.StudentSteps)
	for k := range ts {
		ts[k] = tMax * float64(c.StudentSteps-k) / float64(c.StudentSteps)
	}
	return ts
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
	// HeadLR is the heads' AdamW learning rate (same warmup and cosine as trainer.lr).
	HeadLR float64 `mapstructure:"head_lr"`
	// HeadSteps is the number of head updates per student update.
	HeadSteps int `mapstructure:"head_steps"`
}

// GenLosses lists the accepted values of ladd.gen_loss.
var GenLosses = []string{"non_saturating", "hinge"}

// DefaultLADDConfig: t̂ ~ logit-normal(1, 1), heads on encoder, middle and decoder features,
// non-saturating generator loss, no distillation term, one head update per student update.
func DefaultLADDConfig() LADDConfig {
	return LADDConfig{TLocation: 1, TScale: 1, Taps: []string{"down1", "down2", "mid", "up2", "up1"}, HeadChannels: 32,
		GenLoss: "non_saturating", AdvWeight: 1, DistillWeight: 0, DistillSteps: 4, DistillCFG: 2, HeadLR: 2e-4, HeadSteps: 1}
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
	if !slices.Contains(GenLosses, c.GenLoss) {
		return fmt.Errorf("ladd.gen_loss: unknown value %q (known: %v)", c.GenLoss, GenLosses)
	}
	if c.AdvWeight < 0 || c.DistillWeight < 0 || c.AdvWeight+c.DistillWeight == 0 {
		return fmt.Errorf("ladd.adv_weight/distill_weight: must be >= 0 and not both 0, got %g, %g", c.AdvWeight, c.DistillWeight)
	}
	if c.DistillSteps < 1 {
		return fmt.Errorf("ladd.distill_steps: must be positive, got %d", c.DistillSteps)
	}
	if c.DistillCFG < 0 {
		return fmt.Errorf("ladd.distill_cfg: must be >= 0, got %g", c.DistillCFG)
	}
	if !(c.HeadLR > 0) {
		return fmt.Errorf("ladd.head_lr: must be positive, got %g", c.HeadLR)
	}
	if c.HeadSteps < 1 {
		return fmt.Errorf("ladd.head_steps: must be >= 1, got %d", c.HeadSteps)
	}
	return nil
}
