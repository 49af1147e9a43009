package distill

import (
	"fmt"
	"slices"

	"github.com/fewstep/fewstep/trainer"
)

// FinetuneConfig is the `finetune:` section of `fewstep finetune`.
//
// Quality tuning after Emu (Dai et al., "Emu: Enhancing Image Generation Models Using Photogenic
// Needles in a Haystack", arXiv 2309.15807, §3.3): a pre-trained model is fine-tuned with
// supervision on a small set of exceptionally good images — "quality over quantity"; a few thousand
// hand-picked images suffice and the tuning is short because longer tuning overfits. In fewstep:
//   - curation: `fewstep data score` writes a score column (classifier confidence/margin,
//     sharpness, or a user's column) and the run's data section keeps the top-K overall or per
//     class (data.top_k, data.top_k_per_class) above data.min_score;
//   - the run starts from trainer.init_from (a run directory or a checkpoint file) with a small
//     learning rate, small batch and short schedule, with EMA;
//   - it evaluates every trainer.eval_every steps on the held-out split and stops early after
//     trainer.patience evaluations without improvement of trainer.eval_metric, keeping the best
//     checkpoint (RUN/best.json).
//
// Objective diffusion tunes a teacher with the diffusion loss; distill tunes a distilled student
// with its own distillation method (the distill section, e.g. LADD) on the curated data.
type FinetuneConfig struct {
	// Method is quality_tune.
	Method string `mapstructure:"method"`
	// Objective is diffusion (teachers) or distill (students: the distill section's method).
	Objective string `mapstructure:"objective"`
}

// FinetuneObjectives lists the accepted values of finetune.objective.
var FinetuneObjectives = []string{"diffusion", "distill"}

// DefaultFinetuneConfig: quality tuning of a teacher with the diffusion loss.
func DefaultFinetuneConfig() FinetuneConfig {
	return FinetuneConfig{Method: "quality_tune", Objective: "diffusion"}
}

// Validate checks every key; errors name the key as "finetune.<key>".
func (c FinetuneConfig) Validate() error {
	if c.Method != "quality_tune" {
		return fmt.Errorf("finetune.method: unknown value %q (known: [quality_tune])", c.Method)
	}
	if !slices.Contains(FinetuneObjectives, c.Objective) {
		return fmt.Errorf("finetune.objective: unknown value %q (known: %v)", c.Objective, FinetuneObjectives)
	}
	return nil
}

// CheckQualityTune checks the trainer keys quality tuning needs on a fresh run: a source of
// weights (trainer.init_from) and, for early stopping, an evaluation interval.
func CheckQualityTune(tc trainer.Config, resumed bool) error {
	if tc.InitFrom == "" && !resumed {
		return fmt.Errorf("trainer.init_from: quality tuning starts from a trained run directory or checkpoint file")
	}
	if tc.EvalEvery == 0 {
		return fmt.Errorf("trainer.eval_every: quality tuning evaluates on the held-out split to keep its best checkpoint; set it > 0")
	}
	return nil
}
