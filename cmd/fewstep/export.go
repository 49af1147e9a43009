package main

import (
	"fmt"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/generate"
)

func cmdExport(args []string) error {
	fs := newFlagSet("export", "export -run RUN_DIR -out model.safetensors [-raw] [-checkpoint newest|best|STEP] [-decoder full|TINY_RUN] [-merge-lora | -lora-only | -delta]\n  fewstep export -run RUN_DIR | -model FILE -format onnx -batch N -out model.onnx [-steps K] [-sampler S] [-cfg W] [-reference DIR]")
	runDir := fs.String("run", "", "run directory")
	modelFile := fs.String("model", "", "exported model file (with -format onnx, instead of -run)")
	out := fs.String("out", "", "output file, e.g. model.safetensors or model.onnx (required)")
	raw := fs.Bool("raw", false, "export the raw trained weights (/model) instead of the EMA weights (/ema)")
	ckptFlag := fs.String("checkpoint", "newest", "checkpoint: newest, best (early stopping's RUN/best.json) or a step")
	format := fs.String("format", "safetensors", "safetensors, or onnx: the denoiser (OUT) and the K-step generator (OUT with -generator before .onnx)")
	batch := fs.Int("batch", 1, "onnx: the fixed batch size of both graphs")
	steps := fs.Int("steps", 0, "onnx generator: sampler steps (default: the model's recommendation)")
	sampler := fs.String("sampler", "", "onnx generator: sampler (default: the model's)")
	cfgScale := fs.Float64("cfg", 0, "onnx generator: guidance scale (default: the model's)")
	loraOnly := fs.Bool("lora-only", false, "a LoRA run: write only its adapters, kohya-style (lora_unet_<layer>.lora_down.weight, .lora_up.weight, .alpha)")
	delta := fs.Bool("delta", false, "a distilled run: write ΔW = W_student − W_teacher (apply it with sample/eval -delta FILE[:strength])")
	mergeLoRA := fs.Bool("merge-lora", false, "a LoRA run: write the model with its adapters merged into the weights")
	decoder := fs.String("decoder", "full", "latent runs: the first stage the file carries: full (the autoencoder's decoder) or the run directory of a tiny decoder distilled from it (SDXS)")
	reference := fs.String("reference", "", "onnx: also write inputs and fewstep's own outputs to this directory (for make interop)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *delta {
		if *runDir == "" || *out == "" {
			return usagef("export -delta: -run RUN_DIR and -out FILE are required")
		}
		return exportDelta(*runDir, *ckptFlag, *raw, *out)
	}
	if *loraOnly {
		if *runDir == "" || *out == "" {
			return usagef("export -lora-only: -run RUN_DIR and -out FILE are required")
		}
		return exportLoRAOnly(*runDir, *ckptFlag, *raw, *out)
	}
	if *format == "onnx" {
		return exportONNX(*runDir, *modelFile, *out, *ckptFlag, *raw, *mergeLoRA, *decoder, *batch, generate.Options{Steps: *steps, Sampler: *sampler, CFG: *cfgScale}, *reference)
	}
	if *format != "safetensors" {
		return usagef("export: -format: unknown value %q (safetensors or onnx)", *format)
	}
	if *runDir == "" || *out == "" {
		return usagef("export: -run RUN_DIR and -out FILE are required")
	}
	m, err := runModel(*runDir, *ckptFlag, *raw, *mergeLoRA)
	if err != nil {
		return err
	}
	if err := useTinyDecoderFile(m, *runDir, *decoder); err != nil {
		return err
	}
	if err := export.Write(*out, m); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s\n", *out, m.Describe())
	return nil
}

// runModel builds the export of a run's checkpoint (EMA weights unless raw); a LoRA run's adapters
// are merged with merge and refused without.
func runModel(runDir, ckptFlag string, raw, merge bool) (*export.Model, error) {
	run := checkpoints.RunDir(runDir)
	cfg, _, err := configs.Load(run.ConfigPath(), nil, nil)
	if err != nil {
		return nil, err
	}
	step, ts, err := loadCheckpoint(run, ckptFlag)
	if err != nil {
		return nil, err
	}
	m, err := cfg.ExportModel(run, step, ts, raw)
	if err != nil {
		return nil, err
	}
	if err := mergeRunLoRA(m, cfg.LoRA, runDir, merge); err != nil {
		return nil, err
	}
	m.ClassNames = classNames(cfg.Data)
	if m.Latent, err = latentFirstStage(cfg.Data); err != nil {
		return nil, err
	}
	return m, nil
}

// useTinyDecoderFile makes the export m of a latent run carry the tiny decoder of the
// tiny_decoder run named by -decoder instead of the full decoder ("full": leaves m as it is).
func useTinyDecoderFile(m *export.Model, runDir, decoder string) error {
	if decoder == "full" {
		return nil
	}
	if m.Latent == nil {
		return usagef("export -decoder %s: %s is not a latent run (it generates images directly)", decoder, runDir)
	}
	cfg, w, err := tinyDecoder(decoder, m.Latent.Source)
	if err != nil {
		return err
	}
	m.Latent.Tiny, m.Latent.Decoder = &cfg, w
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
