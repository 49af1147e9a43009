package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

func cmdSample(args []string) error {
	fs := newFlagSet("sample", "sample -run RUN_DIR | -model FILE [-sampler ddim] [-steps 50] [-spacing trailing | -schedule FILE] [-cfg 2.0] [-class 3|all] [-n 64] [-seed 0] [-out grid.png|DIR/]")
	runDir := fs.String("run", "", "run directory (this or -model)")
	modelFile := fs.String("model", "", "exported model file (fewstep export) instead of -run")
	steps := fs.Int("steps", 0, "sampler steps (default: the run's sample.steps)")
	sampler := fs.String("sampler", "", "solver: "+strings.Join(sampling.Samplers, ", ")+" (default: the run's sample.sampler)")
	spacing := fs.String("spacing", "", "timestep spacing: "+strings.Join(sampling.Spacings, ", ")+" (default: the run's sample.spacing)")
	schedule := fs.String("schedule", "", "schedule file from `fewstep schedule optimize` (replaces the spacing and -steps)")
	eta := fs.Float64("eta", math.NaN(), "DDIM stochasticity in [0, 1] (default: the run's sample.eta)")
	cfgScale := fs.Float64("cfg", math.NaN(), "classifier-free guidance scale (default: the run's sample.cfg)")
	class := fs.String("class", "all", "class index, or all for one row per class")
	n := fs.Int("n", 0, "images (per class with -class all; default: the run's sample.per_class, or 64 for one class)")
	seed := fs.Int("seed", -1, "seed of the first image; image i uses seed+i (default: the run's sample.seed)")
	out := fs.String("out", "", "output PNG (default RUN_DIR/samples/sample.png, or FILE-sample.png for -model)")
	ema := fs.Bool("ema", true, "use the EMA weights (-run; a model file holds the weights it was exported with)")
	ckptFlag := fs.String("checkpoint", "newest", "checkpoint: newest, best (early stopping's RUN/best.json) or a step")
	batch := fs.Int("batch", 0, "images per executor call (default: the run's sample.batch_size)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	job, loadWeights, err := sampleSource(*runDir, *modelFile, *ckptFlag, *ema)
	if err != nil {
		return err
	}
	sc := job.Sample
	if *steps > 0 {
		sc.Steps = *steps
	}
	if *sampler != "" {
		sc.Sampler = *sampler
	}
	if *spacing != "" {
		sc.Spacing = *spacing
	}
	if *schedule != "" {
		sc.ScheduleFile = *schedule
	}
	if !math.IsNaN(*eta) {
		sc.Eta = *eta
	}
	if !math.IsNaN(*cfgScale) {
		sc.CFG = *cfgScale
	}
	if *seed >= 0 {
		sc.Seed = *seed
	}
	if *batch > 0 {
		sc.BatchSize = *batch
	}
	if err := sc.Validate(); err != nil {
		return usagef("sample: %v", err)
	}
	seeds, classes, cols, err := sampleLayout(*class, *n, sc, job.Model.NumClasses)
	if err != nil {
		return err
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	store := model.NewStore()
	step, err := loadWeights(store)
	if err != nil {
		return err
	}
	job.Sample = sc
	s, err := trainer.GridSampler(backend, store, *job)
	if err != nil {
		return err
	}
	side, ch := job.Data.ImageSize, job.Data.Channels
	if isDirTarget(*out) {
		if err := writeSampleDir(*out, s, seeds, classes, side, ch, sc.BatchSize); err != nil {
			return err
		}
		fmt.Printf("wrote %d PNGs and labels.csv to %s (checkpoint step %d, %s weights, %d %s steps, cfg %.2g)\n",
			len(seeds), *out, step, map[bool]string{true: "EMA", false: "raw"}[sc.UseEMA], sc.Steps, sc.Sampler, sc.CFG)
		return nil
	}
	imgs, err := s.Sample(seeds, classes, side, side, ch)
	if err != nil {
		return err
	}
	path := *out
	if path == "" && *modelFile != "" {
		path = strings.TrimSuffix(*modelFile, ".safetensors") + "-sample.png"
	} else if path == "" {
		path = checkpoints.RunDir(*runDir).SamplesDir() + "/sample.png"
	}
	if err := sampling.WriteGrid(path, imgs, len(seeds), side, side, ch, cols); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d images from checkpoint step %d (%s weights, %d %s steps, NFE %d, cfg %.2g)\n",
		path, len(seeds), step, map[bool]string{true: "EMA", false: "raw"}[sc.UseEMA], len(s.Times())-1, sc.Sampler, s.NFE(), sc.CFG)
	return nil
}

// isDirTarget reports whether -out names a directory (ends with a slash or exists as one).
func isDirTarget(out string) bool {
	if strings.HasSuffix(out, "/") {
		return true
	}
	st, err := os.Stat(out)
	return err == nil && st.IsDir()
}

// writeSampleDir generates the images batch by batch and writes one PNG per image plus
// labels.csv (file, label, seed) for external scorers.
func writeSampleDir(dir string, s *sampling.Sampler, seeds []uint64, classes []int32, side, ch, batch int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var csv strings.Builder
	csv.WriteString("file,label,seed\n")
	per := side * side * ch
	for start := 0; start < len(seeds); start += batch {
		end := min(start+batch, len(seeds))
		imgs, err := s.Sample(seeds[start:end], classes[start:end], side, side, ch)
		if err != nil {
			return err
		}
		for i := start; i < end; i++ {
			png, err := sampling.ImagePNG(imgs[(i-start)*per:(i-start+1)*per], side, side, ch)
			if err != nil {
				return err
			}
			name := fmt.Sprintf("%06d.png", i)
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(&csv, "%s,%d,%d\n", name, classes[i], seeds[i])
		}
	}
	return checkpoints.WriteFileAtomic(filepath.Join(dir, "labels.csv"), []byte(csv.String()), 0o644)
}

// sampleLayout returns per-image seeds and classes and the grid columns for -class/-n.
func sampleLayout(class string, n int, sc sampling.Config, numClasses int) ([]uint64, []int32, int, error) {
	var seeds []uint64
	var classes []int32
	if class == "all" {
		if n <= 0 {
			n = sc.PerClass
		}
		for c := range numClasses {
			for j := range n {
				seeds = append(seeds, uint64(sc.Seed+c*n+j))
				classes = append(classes, int32(c))
			}
		}
		return seeds, classes, n, nil
	}
	c, err := strconv.Atoi(class)
	if err != nil || c < 0 || c >= numClasses {
		names := ""
		if numClasses == len(data.MNISTClassNames) {
			names = " (MNIST: 0=zero … 9=nine)"
		}
		return nil, nil, 0, usagef("sample: -class %q: want an index in [0, %d) or all%s", class, numClasses, names)
	}
	if n <= 0 {
		n = 64
	}
	for j := range n {
		seeds = append(seeds, uint64(sc.Seed+j))
		classes = append(classes, int32(c))
	}
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	return seeds, classes, cols, nil
}
