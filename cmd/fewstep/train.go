package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/autoenc"
	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/eval"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

func cmdTrain(args []string) error {
	ra, err := parseRunFlags("train", "train -config NAME|FILE [-set section.key=value]... [--dry-run] | train -resume RUN_DIR [-set …]",
		"mnist-teacher", args)
	if ra == nil || err != nil {
		return err
	}
	opt := trainer.Options{Resume: ra.resume, StopAt: ra.stopAt}
	if ra.cfg.Model.Arch == models.ArchAutoencoder { // latent diffusion's first stage (part 15)
		opt.Method, opt.Label = autoenc.New(ra.cfg.Autoencoder), "autoencoder"
	} else if err := latentDecoder(&ra.job); err != nil {
		return err
	}
	if ra.cfg.Model.Arch == models.ArchTinyDecoder { // SDXS's tiny decoder, from the latents' full decoder
		opt.Method, opt.Label = autoenc.NewTiny(ra.cfg.TinyDecoder), "tiny decoder"
	}
	return runTraining(ra.job, opt, "fewstep train")
}

// runArgs are the parsed flags of a training command (train, distill).
type runArgs struct {
	cfg    *configs.Run
	job    trainer.Job
	resume bool
	stopAt int
}

// parseRunFlags parses -config/-resume/-set/--dry-run/-stop-at and loads the run config. It
// returns nil (and no error) when the command is done: -h, or --dry-run after printing the config.
func parseRunFlags(name, usage, defaultConfig string, args []string) (*runArgs, error) {
	fs := newFlagSet(name, usage)
	config := fs.String("config", defaultConfig, "embedded config name or YAML file")
	resume := fs.String("resume", "", "resume the run in this directory from its newest checkpoint")
	dryRun := fs.Bool("dry-run", false, "print the resolved config and exit")
	stopAt := fs.Int("stop-at", 0, "stop (with a checkpoint) after this many total steps")
	var sets multiFlag
	fs.Var(&sets, "set", "override a config key: section.key=value (repeatable)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return nil, err
	}
	source := *config
	if *resume != "" {
		source = checkpoints.RunDir(*resume).ConfigPath()
	}
	cfg, resolved, err := configs.Load(source, sets, os.Environ())
	if err != nil {
		return nil, err
	}
	if *dryRun {
		_, err := os.Stdout.Write(resolved)
		return nil, err
	}
	job := cfg.Job(resolved)
	if *resume != "" {
		job.RunDir = checkpoints.RunDir(*resume)
	}
	return &runArgs{cfg: cfg, job: job, resume: *resume != "", stopAt: *stopAt}, nil
}

// runTraining runs trainer.Train for job on the configured backend with SIGINT/SIGTERM handling
// and prints where everything went. header starts the first line.
func runTraining(job trainer.Job, opt trainer.Options, header string) error {
	backend, err := engine.New()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("%s: run %s, backend %s, %d steps at batch %d\n", header, job.RunDir, backend.Name(), job.Trainer.Steps, job.Trainer.BatchSize)
	opt.Out, opt.TTY = os.Stdout, isTerminal(os.Stdout)
	if job.Trainer.EvalEvery > 0 && opt.Evaluate == nil {
		if opt.Evaluate, err = storeEvaluator(backend, job); err != nil {
			return err
		}
	}
	if opt.AfterGrid == nil {
		opt.AfterGrid = func() error {
			return writeReport(filepath.Join(string(job.RunDir), "report.html"), []string{string(job.RunDir)})
		}
	}
	t0 := time.Now()
	res, err := trainer.Train(ctx, backend, job, opt)
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(string(job.RunDir))
	fmt.Printf("done: %d steps in %s, last loss %.4f\n  run dir:    %s\n  checkpoint: %s\n  metrics:    %s\n",
		res.Steps, time.Since(t0).Round(time.Second), res.LastLoss, abs, res.Checkpoint, job.RunDir.MetricsPath())
	switch {
	case res.Grid != "" && job.Model.Arch == models.ArchAutoencoder:
		fmt.Printf("  grid:       %s (inputs over reconstructions)\n", res.Grid)
	case res.Grid != "" && job.Model.Arch == models.ArchTinyDecoder:
		fmt.Printf("  grid:       %s (full decoder over tiny decoder)\n", res.Grid)
	case res.Grid != "":
		fmt.Printf("  samples:    %s (%d steps)\n", res.Grid, job.Sample.Steps)
	}
	if res.BestStep > 0 {
		fmt.Printf("  best:       step %d, %s %.4g (%s; evaluate it with -checkpoint best)\n", res.BestStep, job.Trainer.EvalMetric, res.Best, job.RunDir.BestPath())
	}
	return nil
}

// storeEvaluator wires `fewstep eval`'s metrics into the trainer (trainer.eval_every): the
// dataset's feature classifier (trained and cached on first use) and its held-out split.
func storeEvaluator(backend compute.Backend, job trainer.Job) (func(int, *model.Store) (map[string]float64, error), error) {
	tc, err := eval.ClassifierFor(backend, job.Data, os.Stdout)
	if err != nil {
		return nil, err
	}
	test, err := tc.LoadTestSet(backend, eval.ClassifierData(job.Data))
	if err != nil {
		return nil, err
	}
	return eval.StoreEvaluator(backend, job, tc, test, job.Trainer.EvalN)
}

// latentDecoder wires the autoencoder's decoder into the job when the training data holds latent
// rows (fewstep data encode): grids and evaluations decode the samples.
func latentDecoder(job *trainer.Job) error {
	if latent, _, _, _, err := data.LatentMetaOf(job.Data.Train); err != nil || !latent {
		return err
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	return attachDecoder(job, backend)
}
