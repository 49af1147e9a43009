package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/distill"
	"github.com/fewstep/fewstep/eval"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// modelJob is the trainer job of an exported model file (sample and eval read models as jobs):
// its model, diffusion and data sections, its recommended sampler, and the weight scope its
// weights are loaded into (/ema or /model, as exported).
func modelJob(m *export.Model) (trainer.Job, error) {
	sc := sampling.DefaultConfig()
	if err := m.Sample.Decode(&sc); err != nil {
		return trainer.Job{}, err
	}
	sc.UseEMA = m.Source.Weights == export.WeightsEMA
	dc := m.Data
	if m.Latent != nil && dc.ClassifierTrain == "" { // scored in pixels, against the encoded images
		dc.ClassifierTrain = m.Latent.Source.Data
	}
	return trainer.Job{Data: dc, Model: m.Model, Diffusion: m.Diffusion, Trainer: trainer.DefaultConfig(),
		Sample: sc, Distilled: m.Distilled, StudentTimes: m.StudentTimes}, nil
}

// modelDecoder is the first stage of a latent model file (its decoder), nil for a pixel model.
func modelDecoder(backend compute.Backend, m *export.Model) (trainer.LatentDecoder, error) {
	if m.Latent == nil {
		return nil, nil
	}
	return sampling.DecoderFromTensors(backend, m.Latent.Source, m.Latent.Tiny, m.Latent.Scale, m.Latent.Decoder)
}

// modelTensors names the file's weights as a checkpoint holds them: <scope>/<path>.
func modelTensors(m *export.Model) []checkpoints.NamedTensor {
	var ts []checkpoints.NamedTensor
	for _, name := range m.Names() {
		ts = append(ts, checkpoints.NamedTensor{Name: m.Source.Weights + "/" + name, Tensor: m.Tensors[name]})
	}
	return ts
}

// modelRunDir writes the file's weights as the only checkpoint (at its source step) of a new
// temporary run directory, for code that loads runs (eval); remove it when done.
func modelRunDir(m *export.Model) (checkpoints.RunDir, error) {
	dir, err := os.MkdirTemp("", "fewstep-model-")
	if err != nil {
		return "", err
	}
	if _, err := checkpoints.Save(checkpoints.RunDir(dir), m.Source.Step, modelTensors(m), nil, 0); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return checkpoints.RunDir(dir), nil
}

// sampleSource resolves `fewstep sample`'s -run or -model: the job (configs and sample section)
// and a function loading its weights into a store that returns the checkpoint step. A run whose
// checkpoint holds /teacher weights is a distilled student (job.Distilled, as eval and exported
// files mark it), set when its weights are loaded; so is the decoder of a latent run or model
// (job.Decoder).
func sampleSource(runDir, modelFile, ckptFlag string, ema bool) (*trainer.Job, func(compute.Backend, *model.Store) (int64, error), error) {
	if (runDir == "") == (modelFile == "") {
		return nil, nil, usagef("sample: give either -run RUN_DIR or -model FILE")
	}
	if modelFile != "" {
		if ckptFlag != "newest" {
			return nil, nil, usagef("sample: -checkpoint applies to -run only (a model file holds one checkpoint)")
		}
		m, err := export.ReadModel(modelFile)
		if err != nil {
			return nil, nil, err
		}
		job, err := modelJob(m)
		return &job, func(backend compute.Backend, store *model.Store) (int64, error) {
			if job.Decoder, err = modelDecoder(backend, m); err != nil {
				return 0, fmt.Errorf("%s: %w", modelFile, err)
			}
			for _, nt := range modelTensors(m) {
				if _, err := store.CreateVariable("/"+nt.Name, nt.Tensor); err != nil {
					return 0, fmt.Errorf("%s: tensor %s: %w", modelFile, nt.Name, err)
				}
			}
			return m.Source.Step, nil
		}, err
	}
	run := checkpoints.RunDir(runDir)
	ckpt, err := trainer.ResolveCheckpoint(run, ckptFlag)
	if err != nil {
		return nil, nil, usagef("sample: -checkpoint: %v", err)
	}
	cfg, resolved, err := configs.Load(run.ConfigPath(), nil, nil)
	if err != nil {
		return nil, nil, err
	}
	job := cfg.Job(resolved)
	job.Sample.UseEMA = ema
	return &job, func(backend compute.Backend, store *model.Store) (int64, error) {
		if err := attachDecoder(&job, backend); err != nil {
			return 0, err
		}
		step, err := trainer.LoadWeights(run, ckpt, store)
		for v := range store.IterVariables() {
			if strings.HasPrefix(v.Path(), "/"+distill.TeacherScope+"/") {
				job.Distilled = true
				break
			}
		}
		return step, err
	}, nil
}

// modelSpecs reads exported model files for eval (a -model value is FILE or FILE@STEPS, that
// model's own step counts): each becomes a run spec, named after the file, over a temporary run
// directory (modelRunDir). It returns the specs, the eval output directory of the first file
// (FILE without .safetensors, plus "-eval") and the temporary directories to remove, also on error.
func modelSpecs(backend compute.Backend, files []string) (specs []eval.RunSpec, outDir string, tmp []string, err error) {
	for _, arg := range files {
		file, list, hasSteps := strings.Cut(arg, "@")
		var steps []int
		if hasSteps {
			if steps, err = parseInts(list); err != nil {
				return nil, "", tmp, usagef("eval: -model %s: steps after @: %v", arg, err)
			}
		}
		m, err := export.ReadModel(file)
		if err != nil {
			return nil, "", tmp, err
		}
		job, err := modelJob(m)
		if err == nil {
			job.Decoder, err = modelDecoder(backend, m)
		}
		if err == nil {
			job.RunDir, err = modelRunDir(m)
		}
		if err != nil {
			return nil, "", tmp, fmt.Errorf("%s: %w", file, err)
		}
		tmp = append(tmp, string(job.RunDir))
		specs = append(specs, eval.RunSpec{Name: strings.TrimSuffix(filepath.Base(file), ".safetensors"), Job: job, Steps: steps})
		if outDir == "" {
			outDir = strings.TrimSuffix(file, ".safetensors") + "-eval"
		}
	}
	return specs, outDir, tmp, nil
}
