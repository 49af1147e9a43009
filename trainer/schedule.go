package trainer

import "math"

// LR is the learning rate used for optimizer step `step` (0-based): linear warmup from 0 to
// cfg.LR over WarmupSteps, then cosine decay to MinLRRatio·LR at cfg.Steps (Loshchilov & Hutter,
// "SGDR", arXiv 1608.03983). A pure function of the step.
func LR(cfg Config, step int) float64 {
	if step < cfg.WarmupSteps {
		return cfg.LR * float64(step+1) / float64(cfg.WarmupSteps+1)
	}
	span := max(cfg.Steps-cfg.WarmupSteps, 1)
	progress := min(float64(step-cfg.WarmupSteps)/float64(span), 1)
	floor := cfg.MinLRRatio * cfg.LR
	return floor + (cfg.LR-floor)*0.5*(1+math.Cos(math.Pi*progress))
}

// EMADecay is the EMA decay applied after optimizer step `step` (0-based): min(EMADecay, (1+n)/(10+n)).
func EMADecay(cfg Config, step int) float64 {
	n := float64(step)
	return min(cfg.EMADecay, (1+n)/(10+n))
}
