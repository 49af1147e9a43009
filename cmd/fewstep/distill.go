package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/distill"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

func cmdDistill(args []string) error {
	if len(args) > 0 && args[0] == "generate" {
		return distillGenerate(args[1:])
	}
	ra, err := parseRunFlags("distill", "distill -config NAME|FILE [-set section.key=value]... [--dry-run] [-stop-at N] | distill -resume RUN_DIR | distill generate …",
		"mnist-ladd", args)
	if ra == nil || err != nil {
		return err
	}
	cfg, job := ra.cfg, ra.job
	teacher, err := loadTeacher(cfg.Distill.Teacher)
	if err != nil {
		return err
	}
	job.Distilled = true
	header := fmt.Sprintf("fewstep distill: %s of %s into a %d-step student at t=%v", cfg.Distill.Method, teacher.Dir,
		cfg.Distill.StudentSteps, cfg.Distill.Times(cfg.Diffusion.TMax))
	method := distill.NewLADD(cfg.Distill, cfg.LADD, teacher)
	if cfg.Distill.Method == "imagine_flash" {
		method = distill.NewImagineFlash(cfg.Distill, cfg.ImagineFlash, cfg.LADD, teacher)
		fc := cfg.ImagineFlash
		header = fmt.Sprintf("fewstep distill: imagine_flash (%s) of %s, student schedules %v, τ = shift(t) %s",
			fc.Mode, teacher.Dir, fc.Schedules(cfg.Distill, cfg.Diffusion.TMax), fc.Shift)
	}
	return runTraining(job, trainer.Options{Resume: ra.resume, StopAt: ra.stopAt, Method: method, Label: "distill"}, header)
}

// loadTeacher reads a teacher run's resolved config.
func loadTeacher(dir string) (distill.Teacher, error) {
	rd := checkpoints.RunDir(dir)
	if steps, err := checkpoints.List(rd); err != nil || len(steps) == 0 {
		return distill.Teacher{}, fmt.Errorf("distill.teacher: %s has no checkpoint (train it first: fewstep train -config mnist-teacher)", dir)
	}
	tc, _, err := configs.Load(rd.ConfigPath(), nil, nil)
	if err != nil {
		return distill.Teacher{}, fmt.Errorf("distill.teacher: %w", err)
	}
	return distill.Teacher{Dir: rd, Model: tc.Model, Diffusion: tc.Diffusion}, nil
}

// distillGenerate writes teacher samples (synthetic data, LADD §3.3) as a Parquet dataset.
func distillGenerate(args []string) error {
	fs := newFlagSet("distill generate", "distill generate -teacher RUN_DIR -n N [-cfg 2] [-steps 16] [-sampler ddim] [-seed 1000000] [-batch 250] -out synth.parquet")
	teacherDir := fs.String("teacher", "", "teacher run directory (required)")
	n := fs.Int("n", 10000, "images, balanced over classes")
	cfgScale := fs.Float64("cfg", math.NaN(), "guidance scale (default: the teacher's sample.cfg)")
	steps := fs.Int("steps", 16, "sampler steps")
	sampler := fs.String("sampler", "", "sampler (default: the teacher's sample.sampler)")
	seed := fs.Int("seed", 1000000, "seed of image 0 (image i uses seed+i; keep clear of eval's seeds 0…n)")
	batch := fs.Int("batch", 250, "images per sampler call")
	out := fs.String("out", "", "output Parquet file (required)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *teacherDir == "" || *out == "" || *n < 1 {
		return usagef("distill generate: -teacher RUN_DIR, -out FILE and -n >= 1 are required")
	}
	rd := checkpoints.RunDir(*teacherDir)
	cfg, resolved, err := configs.Load(rd.ConfigPath(), nil, nil)
	if err != nil {
		return err
	}
	sc := cfg.Sample
	sc.Steps, sc.BatchSize, sc.Seed = *steps, *batch, *seed
	if !math.IsNaN(*cfgScale) {
		sc.CFG = *cfgScale
	}
	if *sampler != "" {
		sc.Sampler = *sampler
	}
	if err := sc.Validate(); err != nil {
		return usagef("distill generate: %v", err)
	}
	smp, err := runSampler(rd, cfg.Job(resolved), sc)
	if err != nil {
		return err
	}
	var classNames []string
	if st, err := data.Open(cfg.Data, 1, 0); err == nil {
		classNames = st.Info().ClassNames
		st.Close()
	}
	w, err := data.NewWriter(*out, []string{data.ColImage, data.ColLabel, data.ColCaption, data.ColID, data.ColWidth, data.ColHeight},
		data.WriterOptions{ClassNames: classNames, Progress: os.Stdout, Total: *n})
	if err != nil {
		return err
	}
	side, ch, k := cfg.Data.ImageSize, cfg.Data.Channels, cfg.Model.NumClasses
	t0 := time.Now()
	for start := 0; start < *n; start += *batch {
		end := min(start+*batch, *n)
		seeds := make([]uint64, end-start)
		classes := make([]int32, end-start)
		for i := range seeds {
			seeds[i] = uint64(*seed + start + i)
			classes[i] = int32((start + i) % k)
		}
		imgs, err := smp.Sample(seeds, classes, side, side, ch)
		if err != nil {
			w.Abort()
			return err
		}
		per := side * side * ch
		for i := range seeds {
			pngBytes, err := sampling.ImagePNG(imgs[i*per:(i+1)*per], side, side, ch)
			if err != nil {
				w.Abort()
				return err
			}
			row := data.Row{Image: pngBytes, Label: classes[i], HasLabel: true, Width: int32(side), Height: int32(side),
				ID: fmt.Sprintf("synth-%s-%d", filepath.Base(string(rd)), seeds[i])}
			if int(classes[i]) < len(classNames) {
				row.Caption = classNames[classes[i]]
			}
			if err := w.Write(row); err != nil {
				w.Abort()
				return err
			}
		}
	}
	paths, rows, err := w.Close()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %d teacher samples (%d %s steps, cfg %g) to %s in %s\n", rows, sc.Steps, sc.Sampler, sc.CFG,
		strings.Join(paths, ", "), time.Since(t0).Round(time.Second))
	return nil
}

// runSampler loads the newest weights of run and builds the sampler of job with sample config sc.
func runSampler(run checkpoints.RunDir, job trainer.Job, sc sampling.Config) (*sampling.Sampler, error) {
	backend, err := engine.New()
	if err != nil {
		return nil, err
	}
	store := model.NewStore()
	if _, err := trainer.LoadWeights(run, -1, store); err != nil {
		return nil, err
	}
	job.Sample = sc
	return trainer.GridSampler(backend, store, job)
}
