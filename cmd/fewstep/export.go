package main

import (
	"fmt"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/trainer"
)

func cmdExport(args []string) error {
	fs := newFlagSet("export", "export -run RUN_DIR -out model.safetensors [-raw] [-checkpoint newest|best|STEP]")
	runDir := fs.String("run", "", "run directory (required)")
	out := fs.String("out", "", "output file, e.g. model.safetensors (required)")
	raw := fs.Bool("raw", false, "export the raw trained weights (/model) instead of the EMA weights (/ema)")
	ckptFlag := fs.String("checkpoint", "newest", "checkpoint: newest, best (early stopping's RUN/best.json) or a step")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *runDir == "" || *out == "" {
		return usagef("export: -run RUN_DIR and -out FILE are required")
	}
	run := checkpoints.RunDir(*runDir)
	ckpt, err := trainer.ResolveCheckpoint(run, *ckptFlag)
	if err != nil {
		return usagef("export: -checkpoint: %v", err)
	}
	cfg, _, err := configs.Load(run.ConfigPath(), nil, nil)
	if err != nil {
		return err
	}
	step := ckpt
	var ts map[string]*tensors.Tensor
	if ckpt < 0 {
		step, ts, _, err = checkpoints.LoadLatest(run)
	} else {
		ts, _, err = checkpoints.LoadStep(run, ckpt)
	}
	if err != nil {
		return err
	}
	m, err := cfg.ExportModel(run, step, ts, *raw)
	if err != nil {
		return err
	}
	m.ClassNames = classNames(cfg.Data)
	if err := export.Write(*out, m); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s\n", *out, m.Describe())
	return nil
}

// classNames reads the class names of the training data's Parquet metadata; nil when the data
// cannot be opened or names no classes (the export then omits them).
func classNames(dc data.Config) []string {
	st, err := data.Open(dc, 1, 0)
	if err != nil {
		return nil
	}
	defer st.Close()
	if names := st.Info().ClassNames; len(names) == dc.NumClasses {
		return names
	}
	return nil
}
