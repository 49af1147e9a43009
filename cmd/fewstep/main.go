// Command fewstep trains diffusion teachers, distills them into few-step students, samples, evaluates
// and exports. Subcommands: train, sample, data, bench, configs, eval, schedule, distill, finetune,
// export.
//
// Exit codes: 0 success, 1 runtime error, 2 bad usage or config (the message names the key),
// 130 interrupted (a checkpoint was written first).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/trainer"
)

// usageError is a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

var commands = []struct {
	name, help string
	run        func(args []string) error
}{
	{"train", "train a diffusion model from a run config (or -resume RUN_DIR)", cmdTrain},
	{"sample", "generate a sample grid from a run's checkpoint", cmdSample},
	{"data", "import, inspect, draw and time datasets (data import|inspect|grid|bench …)", cmdData},
	{"bench", "time the training step and forward pass of a model config", cmdBench},
	{"configs", "list the embedded configs, or print one (configs NAME)", cmdConfigs},
	{"distill", "distill a teacher into a few-step student (distill -config mnist-ladd; distill generate …)", cmdDistill},
	{"finetune", "quality-tune a trained teacher or student on a curated subset (finetune -config mnist-qualitytune)", cmdFinetune},
	{"eval", "FID, class accuracy, precision/recall and speed per step count (eval -run …; eval train-classifier)", cmdEval},
	{"schedule", "optimize a sampling schedule (Align Your Steps) or show a spacing's times (schedule optimize|show …)", cmdSchedule},
	{"export", "export a run's inference weights and settings as one safetensors file (export -run RUN_DIR -out model.safetensors)", cmdExport},
	{"report", "write a run's HTML report: curves, sample grids, eval tables, config (report RUN_DIR [RUN_DIR…])", cmdReport},
}

func main() {
	if !engine.SIMD {
		fmt.Fprintln(os.Stderr, "WARNING: fewstep was built without GOEXPERIMENT=simd: the pure-Go backend will be ~20x slower. Rebuild with `make build` (or GOEXPERIMENT=simd go build ./cmd/fewstep).")
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return exitCode(c.run(args[1:]))
		}
	}
	fmt.Fprintf(os.Stderr, "fewstep: unknown command %q\n", args[0])
	usage()
	return 2
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: fewstep COMMAND [flags]   (fewstep COMMAND -h for its flags)")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", c.name, c.help)
	}
}

// exitCode prints err and maps it to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "fewstep:", err)
	var ce *configs.Error
	var ue usageError
	switch {
	case errors.As(err, &ce), errors.As(err, &ue):
		return 2
	case errors.Is(err, trainer.ErrInterrupted):
		return 130
	}
	return 1
}
