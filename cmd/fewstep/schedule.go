package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/sampling"
)

func cmdSchedule(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "optimize":
			return scheduleOptimize(args[1:])
		case "show":
			return scheduleShow(args[1:])
		}
	}
	return usagef("usage:\n  fewstep schedule optimize -run RUN_DIR -steps N [-n 256] [-grid 150] [-cfg 2] [-sigma-min 0.002] [-init exact|SPACING] [-passes 2] [-out FILE.json]\n  fewstep schedule show -run RUN_DIR [-steps N] [-spacing S | -schedule FILE]")
}

// loadRunSampling reads a run's config and sample section with the common overrides.
func loadRunSampling(runDir string) (*configs.Run, []byte, error) {
	if runDir == "" {
		return nil, nil, usagef("schedule: -run RUN_DIR is required")
	}
	return configs.Load(checkpoints.RunDir(runDir).ConfigPath(), nil, nil)
}

// scheduleShow prints the times of a spacing or schedule file with their σ/α.
func scheduleShow(args []string) error {
	fs := newFlagSet("schedule show", "schedule show -run RUN_DIR [-steps N] [-spacing S | -schedule FILE]")
	runDir := fs.String("run", "", "run directory (required)")
	steps := fs.Int("steps", 0, "steps (default: the run's sample.steps)")
	spacing := fs.String("spacing", "", "spacing: "+strings.Join(sampling.Spacings, ", "))
	schedule := fs.String("schedule", "", "schedule file")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	cfg, _, err := loadRunSampling(*runDir)
	if err != nil {
		return err
	}
	sc := cfg.Sample
	if *steps > 0 {
		sc.Steps = *steps
	}
	if *spacing != "" {
		sc.Spacing = *spacing
	}
	sc.ScheduleFile = *schedule
	if err := sc.Validate(); err != nil {
		return usagef("schedule show: %v", err)
	}
	sched := cfg.Diffusion.Sched()
	ts, err := sampling.Times(sc, sched, cfg.Diffusion.TMax, cfg.StudentTimes()) // student: the times of the run's distill section
	if err != nil {
		return err
	}
	fmt.Printf("step  t        sigma/alpha\n")
	for i, t := range ts {
		fmt.Printf("%4d  %.6f %.6g\n", i, t, sched.SigmaBar(t))
	}
	return nil
}

// scheduleOptimize runs Align Your Steps on a run: it estimates the KLUB grid from training images
// and writes the optimal schedule of N steps.
func scheduleOptimize(args []string) error {
	fs := newFlagSet("schedule optimize", "schedule optimize -run RUN_DIR -steps N [-n 256] [-grid 150] [-cfg 2] [-sigma-min 0.002] [-init exact|SPACING] [-passes 2] [-out FILE.json]")
	runDir := fs.String("run", "", "run directory (required)")
	steps := fs.Int("steps", 10, "number of sampling steps to optimize")
	n := fs.Int("n", 256, "training images in the KLUB estimate (one fixed noise each)")
	gridSize := fs.Int("grid", 150, "candidate times (log-SNR grid; baseline spacings are added)")
	cfgScale := fs.Float64("cfg", math.NaN(), "guidance scale of the denoiser (default: the run's sample.cfg)")
	sigmaMin := fs.Float64("sigma-min", 0, "last evaluation's σ/α (default: the run's sample.sigma_min)")
	batch := fs.Int("batch", 0, "images per executor call (default: the run's sample.batch_size)")
	out := fs.String("out", "", "schedule file (default RUN_DIR/schedules/ays-<N>.json)")
	initSpacing := fs.String("init", "karras", "refine from this spacing (AYS §3.3), or exact: the global optimum over the grid")
	passes := fs.Int("passes", 2, "refinement sweeps (early stopping; ignored with -init exact)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	cfg, resolved, err := loadRunSampling(*runDir)
	if err != nil {
		return err
	}
	if *steps < 2 || *n < 1 || *gridSize < *steps || *passes < 0 {
		return usagef("schedule optimize: need -steps >= 2, -n >= 1, -grid >= -steps and -passes >= 0")
	}
	if *initSpacing != "exact" && !slices.Contains(sampling.Spacings, *initSpacing) {
		return usagef("schedule optimize: -init: unknown value %q (exact or one of %v)", *initSpacing, sampling.Spacings)
	}
	sc := cfg.Sample
	sc.Steps, sc.ScheduleFile = *steps, ""
	if !math.IsNaN(*cfgScale) {
		sc.CFG = *cfgScale
	}
	if *sigmaMin > 0 {
		sc.SigmaMin = *sigmaMin
	}
	if *batch > 0 {
		sc.BatchSize = *batch
	}
	if err := sc.Validate(); err != nil {
		return usagef("schedule optimize: %v", err)
	}
	job := cfg.Job(resolved)
	smp, err := runSampler(checkpoints.RunDir(*runDir), job, sc)
	if err != nil {
		return err
	}
	// Training images (no augmentation) and their labels.
	dc := cfg.Data
	dc.HFlip, dc.CropScale, dc.Condition = false, 1, data.ConditionLabel
	stream, err := data.Open(dc, *n, uint64(job.Seed))
	if err != nil {
		return err
	}
	b := data.NewBatch(stream.Info(), dc, *n)
	err = stream.Next(b)
	stream.Close()
	if err != nil {
		return err
	}
	seeds := make([]uint64, *n)
	for i := range seeds {
		seeds[i] = uint64(i)
	}
	sched, tMax := cfg.Diffusion.Sched(), cfg.Diffusion.TMax
	baselines := map[string][]float64{}
	var extra [][]float64
	names := []string{"trailing", "uniform", "karras", "logsnr"}
	if *initSpacing != "exact" && !slices.Contains(names, *initSpacing) {
		names = append(names, *initSpacing)
	}
	for _, sp := range names {
		c := sc
		c.Spacing = sp
		ts, err := sampling.Times(c, sched, tMax, nil)
		if err != nil {
			return err
		}
		baselines[sp] = ts[:*steps]
		extra = append(extra, ts[:*steps])
	}
	grid := sampling.KLUBTimes(sched, tMax, sc.SigmaMin, sc.SigmaMax, *gridSize, extra...)
	t0 := time.Now()
	fmt.Printf("AYS: denoising %d images at %d times (cfg %g)…\n", *n, len(grid), sc.CFG)
	k, err := sampling.ModelKLUBGrid(smp, grid, b.X, b.Labels, seeds, b.H, b.W, b.C, func(done, total int) {
		if done%10 == 0 || done == total {
			fmt.Fprintf(os.Stderr, "\r  %d/%d times (%.0fs)", done, total, time.Since(t0).Seconds())
		}
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	var knots []int
	var best float64
	if *initSpacing == "exact" {
		knots, best, err = k.Optimize(*steps)
	} else if knots, err = k.Knots(baselines[*initSpacing]); err == nil {
		knots, best, err = k.Refine(knots, *passes)
	}
	if err != nil {
		return err
	}
	sf := &sampling.ScheduleFile{Method: "ays-klub", Steps: *steps, Schedule: sched.Kind, Shift: sched.Shift, TMax: tMax, SigmaMin: sc.SigmaMin,
		KLUB: best, Run: *runDir, CFG: sc.CFG, Samples: *n}
	if *initSpacing != "exact" {
		sf.Init, sf.Passes = *initSpacing, *passes
	}
	for _, j := range knots {
		sf.Times = append(sf.Times, grid[j])
	}
	fmt.Printf("\n| schedule | KLUB | times |\n|---|---:|---|\n| AYS (optimized) | %.4g | %s |\n", best, fmtTimes(sf.Times))
	for _, name := range names {
		kn, err := k.Knots(baselines[name])
		if err != nil {
			return err
		}
		v := k.KLUB(kn)
		sf.Baselines = append(sf.Baselines, sampling.Named{Name: name, Value: v})
		fmt.Printf("| %s | %.4g | %s |\n", name, v, fmtTimes(baselines[name]))
	}
	path := *out
	if path == "" {
		path = filepath.Join(*runDir, "schedules", fmt.Sprintf("ays-%d.json", *steps))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := sampling.WriteScheduleFile(path, sf); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s (%.0fs); use it with: fewstep sample -run %s -schedule %s, or fewstep eval -schedule %s\n",
		path, time.Since(t0).Seconds(), *runDir, path, path)
	return nil
}

func fmtTimes(ts []float64) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%.4f", t)
	}
	return strings.Join(parts, " ")
}
