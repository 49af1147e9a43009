package trainer

import (
	"fmt"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
)

// LatentDecoder maps sampled latents (as the data stream gives them: scaled) to images for a run
// on latent rows (fewstep data encode); cmd/fewstep wires the autoencoder's decoder in (Job.Decoder).
type LatentDecoder interface {
	// Decode maps n latents [n, LatentShape()] to images [n, ImageShape()].
	Decode(latents []float32, n int) ([]float32, error)
	LatentShape() (h, w, c int)
	ImageShape() (h, w, c int)
}

// GridWriter is implemented by methods whose training-time grid is not a denoiser's samples (the
// autoencoder's reconstructions): the loop calls WriteGrid(path) at sample_every and at the end.
type GridWriter interface {
	WriteGrid(path string) error
}

// grid writes the sample grid of the current step: one row per class, sample.per_class columns,
// fixed seeds sample.seed+i.
func (r *run) grid() (string, error) {
	if gw, ok := r.method.(GridWriter); ok {
		t0 := time.Now()
		path := r.job.RunDir.SamplePath(int64(r.hs.Step))
		if err := gw.WriteGrid(path); err != nil {
			return "", err
		}
		r.prog.message("step %d: grid %s (%.1fs)", r.hs.Step, path, time.Since(t0).Seconds())
		return path, nil
	}
	if r.sampler == nil {
		var err error
		if r.sampler, err = GridSampler(r.backend, r.store, r.job); err != nil {
			return "", err
		}
	}
	t0 := time.Now()
	path := r.job.RunDir.SamplePath(int64(r.hs.Step))
	if err := ClassGrid(r.sampler, r.job, r.info.ClassNames, path); err != nil {
		return "", err
	}
	r.prog.message("step %d: sample grid %s (%.1fs)", r.hs.Step, path, time.Since(t0).Seconds())
	return path, nil
}

// GridSampler builds the sampler of a run's sample grids over the EMA (or raw) weights in store.
func GridSampler(backend compute.Backend, store *model.Store, job Job) (*sampling.Sampler, error) {
	den, unet, err := models.NewDenoiser(job.Model, job.Diffusion, job.Seed)
	if err != nil {
		return nil, err
	}
	unet.Params().Frozen = true
	scope := EMAScope
	if !job.Sample.UseEMA {
		scope = ModelScope
	}
	m := sampling.Model{Den: den, Scope: scope, NullClass: job.Model.NumClasses, TMax: job.Diffusion.TMax, Distilled: job.Distilled,
		CondWidth: job.Model.CondWidth(), Latent: job.Latent()}
	if job.Distilled {
		m.StudentTimes = job.StudentTimes
	}
	return sampling.NewSampler(backend, store, m, job.Sample)
}

// ClassGrid samples cfg.PerClass images for each class (row = class) and writes the grid PNG. A
// text model gets one row per prompt instead: sample.prompts, else the class names (with the class
// too under model.text.with_class).
// A run on latent rows shows the decoded images (Job.Images).
func ClassGrid(s *sampling.Sampler, job Job, classNames []string, path string) error {
	mc, cfg := job.Model, job.Sample
	rows := mc.NumClasses
	prompts := cfg.Prompts
	if mc.Text.On() {
		if len(prompts) == 0 {
			prompts = classNames
		}
		if len(prompts) == 0 {
			prompts = mc.Text.ClassNames
		}
		if len(prompts) == 0 {
			return fmt.Errorf("sample grid: a text model needs sample.prompts (neither the data nor model.text has class names)")
		}
		rows = len(prompts)
	}
	n := rows * cfg.PerClass
	seeds := make([]uint64, n)
	classes := make([]int32, n)
	rowPrompts := make([]string, n)
	for i := range n {
		seeds[i] = uint64(cfg.Seed + i)
		classes[i] = int32(i / cfg.PerClass)
		if mc.Text.On() {
			rowPrompts[i] = prompts[i/cfg.PerClass]
			if len(cfg.Prompts) > 0 { // free prompts name no class
				classes[i] = -1
			}
		}
	}
	cond := classes
	if mc.Text.On() {
		var err error
		if cond, _, err = sampling.PromptCond(mc, rowPrompts, classes); err != nil {
			return err
		}
	}
	imgs, err := job.Images(s, seeds, cond)
	if err != nil {
		return fmt.Errorf("sample grid: %w", err)
	}
	h, w, c := job.ImageShape()
	return sampling.WriteGrid(path, imgs, n, h, w, c, cfg.PerClass)
}
