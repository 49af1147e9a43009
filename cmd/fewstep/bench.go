package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/trainer"
)

func cmdBench(args []string) error {
	fs := newFlagSet("bench", "bench [-config bench-refunet-s] [-batch 64] [-warmup 3] [-steps 20] [-name refunet-s] [-forward-only] [-side N] [-channels N] [-cpuprofile F] [-dump-onnx DIR]")
	config := fs.String("config", "bench-refunet-s", "embedded config name or YAML file of the model to time")
	batch := fs.Int("batch", 0, "batch size (default: the config's trainer.batch_size)")
	warmup := fs.Int("warmup", 3, "untimed warm-up steps")
	steps := fs.Int("steps", 20, "timed steps (medians)")
	name := fs.String("name", "", "model name in the summary line (default: the config's run.name)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the timed steps to this file")
	dumpONNX := fs.String("dump-onnx", "", "ONNX Runtime backend: save the compiled train-step and forward graphs as DIR/NAME-{train,forward}.onnx (for scripts/ort-profile.mjs)")
	forwardOnly := fs.Bool("forward-only", false, "time only the forward pass")
	side := fs.Int("side", 0, "input side (default: data.image_size)")
	channels := fs.Int("channels", 0, "input channels (default: data.channels; 4 for the latent input of bench-refdit-s)")
	var sets multiFlag
	fs.Var(&sets, "set", "override a config key: section.key=value (repeatable)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg, _, err := configs.Load(*config, sets, os.Environ())
	if err != nil {
		return err
	}
	if *batch <= 0 {
		*batch = cfg.Trainer.BatchSize
	}
	if *name == "" {
		*name = cfg.Run.Name
	}
	if *side <= 0 {
		*side = cfg.Data.ImageSize
	}
	if *channels <= 0 {
		*channels = cfg.Data.Channels
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	var onGraph func(string, *Graph) error
	if *dumpONNX != "" {
		if !engine.KeepONNXModels(backend) {
			return usagef("bench -dump-onnx: needs the ONNX Runtime backend (GOMLX_BACKEND=onnx:…, bin/fewstep-onnx)")
		}
		onGraph = func(part string, g *Graph) error { return engine.DumpGraph(g, *dumpONNX, *name+"-"+part) }
	}
	fmt.Printf("bench %s: backend %s, batch %d, %d warm-up + %d timed steps\n", *name, backend.Description(), *batch, *warmup, *steps)
	r, err := trainer.Bench(backend, cfg.Model, cfg.Diffusion, cfg.Trainer, trainer.BenchOptions{Batch: *batch,
		Side: *side, Channels: *channels, Warmup: *warmup, Steps: *steps, ForwardOnly: *forwardOnly,
		OnGraph: onGraph})
	if err != nil {
		return err
	}
	fmt.Printf("params %d, forward %.2f GFLOP/batch, train %.2f GFLOP/batch (3x forward)\n", r.Params, r.ForwardGFLOP, r.TrainGFLOP)
	fmt.Printf("train step median %.1f ms (%.1f img/s, %.1f GFLOP/s); forward median %.1f ms; peak RSS %.0f MB\n",
		r.TrainStepMS, r.ImgPerS, r.GFLOPS, r.ForwardMS, r.PeakRSSMB)
	fmt.Printf("bench model=%s %s\n", *name, r)
	return nil
}

func cmdConfigs(args []string) error {
	if len(args) == 0 {
		for _, p := range configs.Presets() {
			fmt.Println(p)
		}
		return nil
	}
	text, err := configs.Preset(args[0])
	if err != nil {
		return usagef("configs: no embedded config %q (list them with `fewstep configs`)", args[0])
	}
	_, err = os.Stdout.Write(text)
	return err
}
