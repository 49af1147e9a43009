package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/distill"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// LoRA on the command line (part 16): export -lora-only / -merge-lora of a run with a lora:
// section, and -lora FILE[:strength] (repeatable) for sample, eval and generate, which merges the
// adapters into the weights before sampling (W += strength·(α/r)·down·up per file, in order).

// exportLoRAOnly writes the adapters of a LoRA run's checkpoint (EMA weights unless raw) as a
// kohya-style file (export.WriteLoRA), with the base it was trained on and that base's weights hash.
func exportLoRAOnly(runDir, ckptFlag string, raw bool, out string) error {
	cfg, step, _, weights, err := runWeightSet(runDir, ckptFlag, raw)
	if err != nil {
		return err
	}
	if !cfg.LoRA.On() {
		return usagef("export -lora-only: %s has no adapters (its lora.rank is 0)", runDir)
	}
	f := &export.LoRAFile{Config: cfg.LoRA, Base: cfg.Trainer.InitFrom}
	if cfg.Distill.Teacher != "" {
		f.Base = cfg.Distill.Teacher
	}
	alpha := cfg.LoRA.Alpha
	if alpha == 0 {
		alpha = float64(cfg.LoRA.Rank)
	}
	base := map[string]*tensors.Tensor{}
	for name, t := range weights {
		layer, ok := strings.CutSuffix(name, "/lora_down")
		switch {
		case ok:
			f.Adapters = append(f.Adapters, export.Adapter{Layer: layer, Down: t, Up: weights[layer+"/lora_up"], Alpha: alpha})
		case !strings.HasSuffix(name, "/lora_up"):
			base[name] = t
		}
	}
	f.BaseSHA256 = export.WeightsSHA256(base)
	if err := export.WriteLoRA(out, f); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d adapters (rank %d, alpha %g) of %s step %d, base %s (weights SHA-256 %.12s…)\n", out, len(f.Adapters),
		cfg.LoRA.Rank, alpha, runDir, step, f.Base, f.BaseSHA256)
	return nil
}

// runWeightSet reads a run's config and checkpoint (-checkpoint newest|best|STEP) and its weight
// set (EMA unless raw) keyed by path inside the network.
func runWeightSet(runDir, ckptFlag string, raw bool) (*configs.Run, int64, map[string]*tensors.Tensor, map[string]*tensors.Tensor, error) {
	run := checkpoints.RunDir(runDir)
	cfg, _, err := configs.Load(run.ConfigPath(), nil, nil)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	step, ts, err := loadCheckpoint(run, ckptFlag)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	scope := trainer.EMAScope
	if raw {
		scope = trainer.ModelScope
	}
	weights, err := export.FromCheckpoint(ts, scope)
	return cfg, step, ts, weights, err
}

// loadCheckpoint reads a run's checkpoint (-checkpoint newest|best|STEP).
func loadCheckpoint(run checkpoints.RunDir, ckptFlag string) (int64, map[string]*tensors.Tensor, error) {
	ckpt, err := trainer.ResolveCheckpoint(run, ckptFlag)
	if err != nil {
		return 0, nil, usagef("-checkpoint: %v", err)
	}
	if ckpt < 0 {
		step, ts, _, err := checkpoints.LoadLatest(run)
		return step, ts, err
	}
	ts, _, err := checkpoints.LoadStep(run, ckpt)
	return ckpt, ts, err
}

// mergeRunLoRA folds a LoRA run's adapters into its exported weights (-merge-lora) and drops the
// lora: section; without merge a LoRA run is refused (a model file holds plain weights).
func mergeRunLoRA(m *export.Model, lc models.LoRAConfig, runDir string, merge bool) error {
	if !lc.On() {
		if merge {
			return usagef("export -merge-lora: %s has no adapters (its lora.rank is 0)", runDir)
		}
		return nil
	}
	if !merge {
		return usagef("export: %s trained LoRA adapters: export -merge-lora (a model with the adapters merged) or -lora-only (the adapters, kohya-style)", runDir)
	}
	return models.MergeLoRA(m.Tensors, lc.Scale(), 1)
}

// applyWeightFiles merges -lora FILE[:strength] files, then adds -delta FILE[:strength] weight deltas,
// into the weights store holds under /scope/ (the weight set a sampler reads). A file made on other
// base weights is applied with a warning (an accelerator of a base applies to its fine-tunes); one
// whose layers or shapes do not fit is refused naming the tensor.
func applyWeightFiles(store *model.Store, scope string, args []string, deltas ...string) error {
	if len(args)+len(deltas) == 0 {
		return nil
	}
	weights := map[string]*tensors.Tensor{}
	vars := map[string]*model.Variable{}
	base := map[string]*tensors.Tensor{}
	for v := range store.IterVariables() {
		name, ok := strings.CutPrefix(v.Path(), "/"+scope+"/")
		if !ok {
			continue
		}
		t, err := v.Value()
		if err != nil {
			return err
		}
		weights[name], vars[name] = t, v
		if !trainer.IsAdapter(v) {
			base[name] = t
		}
	}
	hash := export.WeightsSHA256(base)
	for _, arg := range args {
		file, strength, err := export.ParseLoRAArg(arg)
		if err != nil {
			return usagef("%v", err)
		}
		f, err := export.ReadLoRA(file)
		if err != nil {
			return err
		}
		if f.BaseSHA256 != "" && f.BaseSHA256 != hash {
			fmt.Fprintf(os.Stderr, "warning: -lora %s was trained on %s (weights SHA-256 %.12s…), these weights hash to %.12s…: applying it to another fine-tune of that base\n",
				file, f.Base, f.BaseSHA256, hash)
		}
		if err := f.Apply(weights, strength); err != nil {
			return fmt.Errorf("-lora %s: %w", file, err)
		}
	}
	for _, arg := range deltas {
		file, strength, err := export.ParseLoRAArg(arg)
		if err != nil {
			return usagef("%v", err)
		}
		d, err := export.ReadDelta(file)
		if err != nil {
			return err
		}
		if d.BaseSHA256 != hash {
			fmt.Fprintf(os.Stderr, "warning: -delta %s was taken against %s (weights SHA-256 %.12s…), these weights hash to %.12s…: applying it to another fine-tune of that teacher\n",
				file, d.Base, d.BaseSHA256, hash)
		}
		if err := d.Apply(weights, strength); err != nil {
			return fmt.Errorf("-delta %s: %w", file, err)
		}
	}
	for name, t := range weights {
		if t == base[name] { // unchanged (setting a variable to its own value would free it)
			continue
		}
		if err := vars[name].SetValue(t); err != nil {
			return err
		}
	}
	return nil
}

// exportDelta writes ΔW = W_student − W_teacher of a distilled run's checkpoint (EMA weights unless
// raw; a LoRA student's adapters merged first) against the teacher weights its checkpoint holds.
func exportDelta(runDir, ckptFlag string, raw bool, out string) error {
	cfg, step, ts, student, err := runWeightSet(runDir, ckptFlag, raw)
	if err != nil {
		return err
	}
	teacher, err := export.FromCheckpoint(ts, distill.TeacherScope)
	if err != nil {
		return usagef("export -delta: %s is not a distilled run (its checkpoint has no /%s weights)", runDir, distill.TeacherScope)
	}
	if cfg.LoRA.On() {
		if err := models.MergeLoRA(student, cfg.LoRA.Scale(), 1); err != nil {
			return err
		}
	}
	delta, err := export.Diff(student, teacher)
	if err != nil {
		return err
	}
	d := &export.Delta{Tensors: delta, Base: cfg.Distill.Teacher, BaseSHA256: export.WeightsSHA256(teacher)}
	if err := export.WriteDelta(out, d); err != nil {
		return err
	}
	fmt.Printf("wrote %s: ΔW of %d weights (%s step %d − teacher %s)\n", out, len(delta), runDir, step, cfg.Distill.Teacher)
	return nil
}
