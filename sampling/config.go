package sampling

import (
	"fmt"
	"slices"
)

// Config is the `sample:` section: how sample grids (during training and in `fewstep sample`) are made.
type Config struct {
	// Sampler is the solver; today ddim (the deterministic DDIM of Song et al., arXiv 2010.02502, eta=0).
	Sampler string `mapstructure:"sampler"`
	// Steps is the number of solver steps (network evaluations per image without CFG).
	Steps int `mapstructure:"steps"`
	// CFG is the classifier-free guidance scale w: pred = uncond + w·(cond − uncond); 1 disables it.
	CFG float64 `mapstructure:"cfg"`
	// ClipX0 clamps the predicted x̂0 to [-1, 1] at every step.
	ClipX0 bool `mapstructure:"clip_x0"`
	// PerClass is the number of images per class (grid columns) of the training sample grids.
	PerClass int `mapstructure:"per_class"`
	// BatchSize is the number of images generated per executor call.
	BatchSize int `mapstructure:"batch_size"`
	// UseEMA samples with the EMA weights (else the raw trained weights).
	UseEMA bool `mapstructure:"use_ema"`
	// Seed is the seed of the first image; image i uses Seed+i.
	Seed int `mapstructure:"seed"`
}

// DefaultConfig: 50 DDIM steps, CFG 2, 10 images per class, EMA weights.
func DefaultConfig() Config {
	return Config{Sampler: "ddim", Steps: 50, CFG: 2, ClipX0: true, PerClass: 10, BatchSize: 100, UseEMA: true}
}

// Samplers lists the accepted values of sample.sampler.
var Samplers = []string{"ddim"}

// Validate checks every key; errors name the key as "sample.<key>".
func (c Config) Validate() error {
	if !slices.Contains(Samplers, c.Sampler) {
		return fmt.Errorf("sample.sampler: unknown value %q (known: %v)", c.Sampler, Samplers)
	}
	if c.Steps <= 0 {
		return fmt.Errorf("sample.steps: must be positive, got %d", c.Steps)
	}
	if c.CFG < 0 {
		return fmt.Errorf("sample.cfg: must be >= 0, got %g", c.CFG)
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
