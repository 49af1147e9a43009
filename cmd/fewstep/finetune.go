package main

import (
	"fmt"

	"github.com/fewstep/fewstep/distill"
	"github.com/fewstep/fewstep/trainer"
)

// cmdFinetune runs Emu-style quality tuning (distill.FinetuneConfig): a trained teacher or student
// (trainer.init_from) fine-tuned on a curated subset with evaluation and early stopping.
func cmdFinetune(args []string) error {
	ra, err := parseRunFlags("finetune", "finetune -config NAME|FILE [-set section.key=value]... [--dry-run] [-stop-at N] | finetune -resume RUN_DIR",
		"mnist-qualitytune", args)
	if ra == nil || err != nil {
		return err
	}
	cfg, job := ra.cfg, ra.job
	if err := distill.CheckQualityTune(cfg.Trainer, ra.resume); err != nil {
		return usagef("%v", err)
	}
	opt := trainer.Options{Resume: ra.resume, StopAt: ra.stopAt, Label: "finetune"}
	header := fmt.Sprintf("fewstep finetune: quality_tune (%s) from %s on %s", cfg.Finetune.Objective, cfg.Trainer.InitFrom, cfg.Data.Train)
	if cfg.Finetune.Objective == "distill" {
		job.Distilled = true
		var desc string
		if opt.Method, desc, err = distillMethod(cfg); err != nil {
			return err
		}
		header += ", student objective " + desc
	}
	return runTraining(job, opt, header)
}
