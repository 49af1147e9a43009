package trainer

import (
	"fmt"
	"slices"
)

// Config is the `trainer:` section.
type Config struct {
	// Steps is the total number of optimizer steps of the run.
	Steps int `mapstructure:"steps"`
	// BatchSize is the number of examples per step.
	BatchSize int `mapstructure:"batch_size"`
	// LR is the peak learning rate of AdamW.
	LR float64 `mapstructure:"lr"`
	// WarmupSteps ramps the learning rate linearly from 0 to LR.
	WarmupSteps int `mapstructure:"warmup_steps"`
	// MinLRRatio is the floor of the cosine decay as a fraction of LR (reached at Steps).
	MinLRRatio float64 `mapstructure:"min_lr_ratio"`
	// WeightDecay is AdamW's decoupled weight decay (Loshchilov & Hutter, arXiv 1711.05101);
	// it skips biases and normalization gains (all rank-1 parameters).
	WeightDecay float64 `mapstructure:"weight_decay"`
	// Beta1, Beta2, Epsilon are Adam's moment decays and denominator epsilon (Kingma & Ba, arXiv 1412.6980).
	Beta1   float64 `mapstructure:"beta1"`
	Beta2   float64 `mapstructure:"beta2"`
	Epsilon float64 `mapstructure:"epsilon"`
	// GradClip clips the global gradient norm to this value; 0 disables clipping.
	GradClip float64 `mapstructure:"grad_clip"`
	// EMADecay is the decay of the exponential moving average of the weights; the effective decay at
	// step n is min(EMADecay, (1+n)/(10+n)) so early averages are not dominated by the init.
	EMADecay float64 `mapstructure:"ema_decay"`
	// CondDropout is the probability of replacing the class by the null class (classifier-free guidance training).
	CondDropout float64 `mapstructure:"cond_dropout"`
	// LogEvery is the step interval of metrics lines (JSONL and, off a terminal, plain progress lines).
	LogEvery int `mapstructure:"log_every"`
	// SampleEvery is the step interval of sample grids (0: only at the end).
	SampleEvery int `mapstructure:"sample_every"`
	// CheckpointEvery is the step interval of checkpoints (a final one is always written).
	CheckpointEvery int `mapstructure:"checkpoint_every"`
	// KeepCheckpoints is how many of the newest checkpoints are kept (0 keeps all); the best
	// checkpoint of early stopping (RUN/best.json) is always kept.
	KeepCheckpoints int `mapstructure:"keep_checkpoints"`
	// InitFrom starts a fresh run from trained weights instead of a random init: a run directory
	// (its newest checkpoint) or a checkpoint .safetensors file (fine-tuning, e.g. Emu quality
	// tuning, arXiv 2309.15807). For distillation it replaces the teacher as the student's init.
	InitFrom string `mapstructure:"init_from"`
	// InitEMA reads InitFrom's EMA weights (else its raw weights).
	InitEMA bool `mapstructure:"init_ema"`
	// EvalEvery evaluates the EMA weights every this many steps (and at the end) with `fewstep
	// eval` metrics on the held-out split (0: never). Evaluation steps are checkpointed.
	EvalEvery int `mapstructure:"eval_every"`
	// EvalN is the number of generated images per evaluation.
	EvalN int `mapstructure:"eval_n"`
	// EvalMetric chooses the best checkpoint: fid (lower is better), precision, recall,
	// class_accuracy or confidence (higher is better).
	EvalMetric string `mapstructure:"eval_metric"`
	// Patience stops the run after this many evaluations without improvement of EvalMetric (early
	// stopping; 0 never stops early). The best checkpoint is recorded in RUN/best.json.
	Patience int `mapstructure:"patience"`
}

// EvalMetrics lists the accepted values of trainer.eval_metric; LowerIsBetter marks fid.
var EvalMetrics = []string{"fid", "precision", "recall", "class_accuracy", "confidence"}

// LowerIsBetter reports whether a smaller value of metric is an improvement.
func LowerIsBetter(metric string) bool { return metric == "fid" }

// DefaultConfig is sized for the default MNIST teacher on 2 CPU cores.
func DefaultConfig() Config {
	return Config{
		Steps: 3000, BatchSize: 64, LR: 1e-3, WarmupSteps: 100, MinLRRatio: 0.05,
		WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, GradClip: 1,
		EMADecay: 0.999, CondDropout: 0.1,
		LogEvery: 50, SampleEvery: 1000, CheckpointEvery: 500, KeepCheckpoints: 3,
		InitEMA: true, EvalEvery: 0, EvalN: 1000, EvalMetric: "fid", Patience: 0,
	}
}

// Validate checks every key; errors name the key as "trainer.<key>".
func (c Config) Validate() error {
	pos := []struct {
		key string
		v   int
	}{{"steps", c.Steps}, {"batch_size", c.BatchSize}, {"log_every", c.LogEvery}, {"checkpoint_every", c.CheckpointEvery}}
	for _, kv := range pos {
		if kv.v <= 0 {
			return fmt.Errorf("trainer.%s: must be positive, got %d", kv.key, kv.v)
		}
	}
	nonneg := []struct {
		key string
		v   int
	}{{"warmup_steps", c.WarmupSteps}, {"sample_every", c.SampleEvery}, {"keep_checkpoints", c.KeepCheckpoints},
		{"eval_every", c.EvalEvery}, {"patience", c.Patience}}
	for _, kv := range nonneg {
		if kv.v < 0 {
			return fmt.Errorf("trainer.%s: must be >= 0, got %d", kv.key, kv.v)
		}
	}
	if !(c.LR > 0) {
		return fmt.Errorf("trainer.lr: must be positive, got %g", c.LR)
	}
	if c.EvalN < 2 {
		return fmt.Errorf("trainer.eval_n: must be >= 2, got %d", c.EvalN)
	}
	if !slices.Contains(EvalMetrics, c.EvalMetric) {
		return fmt.Errorf("trainer.eval_metric: unknown value %q (known: %v)", c.EvalMetric, EvalMetrics)
	}
	if c.Patience > 0 && c.EvalEvery == 0 {
		return fmt.Errorf("trainer.patience: early stopping needs trainer.eval_every > 0")
	}
	unit := []struct {
		key        string
		v          float64
		closedHigh bool
	}{{"min_lr_ratio", c.MinLRRatio, true}, {"beta1", c.Beta1, false}, {"beta2", c.Beta2, false},
		{"ema_decay", c.EMADecay, true}, {"cond_dropout", c.CondDropout, true}}
	for _, kv := range unit {
		if kv.v < 0 || kv.v > 1 || (kv.v == 1 && !kv.closedHigh) {
			return fmt.Errorf("trainer.%s: must be in [0, 1%s, got %g", kv.key, map[bool]string{true: "]", false: ")"}[kv.closedHigh], kv.v)
		}
	}
	if c.WeightDecay < 0 || c.GradClip < 0 || !(c.Epsilon > 0) {
		return fmt.Errorf("trainer.weight_decay/grad_clip/epsilon: need weight_decay >= 0, grad_clip >= 0, epsilon > 0; got %g, %g, %g",
			c.WeightDecay, c.GradClip, c.Epsilon)
	}
	return nil
}
