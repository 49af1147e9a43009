package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/autoenc"
	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/eval"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

func cmdEval(args []string) error {
	if len(args) > 0 && args[0] == "train-classifier" {
		return evalTrainClassifier(args[1:])
	}
	if len(args) > 0 && args[0] == "calibrate" {
		return evalCalibrate(args[1:])
	}
	if len(args) > 0 && args[0] == "decoder" {
		return evalDecoder(args[1:])
	}
	return evalRuns(args)
}

// evalTrainClassifier trains (or retrains) the feature classifier of a dataset.
func evalTrainClassifier(args []string) error {
	fs := newFlagSet("eval train-classifier", "eval train-classifier [-config NAME|FILE] [-data TRAIN.parquet] [-test TEST.parquet] [-epochs 3]")
	config := fs.String("config", "mnist-teacher", "run config whose data section describes the dataset")
	train := fs.String("data", "", "training split (default: the config's data.train)")
	test := fs.String("test", "", "test split (default: the config's data.test)")
	epochs := fs.Int("epochs", 3, "passes over the training split")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	cfg, _, err := configs.Load(*config, nil, os.Environ())
	if err != nil {
		return err
	}
	dc := cfg.Data
	if *train != "" {
		dc.Train = *train
	}
	if *test != "" {
		dc.Test = *test
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	tc, err := eval.TrainClassifier(backend, eval.ClassifierOptions{Data: dc, Epochs: *epochs, Out: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Printf("classifier: %s\ntest accuracy: %.2f%%\n", tc.Path, 100*tc.TestAccuracy)
	return nil
}

// evalCalibrate prints and writes the metric's response table on real data (eval.Calibrate).
func evalCalibrate(args []string) error {
	fs := newFlagSet("eval calibrate", "eval calibrate [-config NAME|FILE] [-data-train TRAIN.parquet] [-data-test TEST.parquet] [-n 5000,10000] [-seed 0] [-out FILE.md]")
	config := fs.String("config", "mnist-teacher", "run config whose data section describes the dataset")
	train := fs.String("data-train", "", "training split: the classifier's data and the candidates' pool (default: the config's data.classifier_train, else data.train)")
	test := fs.String("data-test", "", "test split, the reference (default: the config's data.test)")
	nFlag := fs.String("n", "5000,10000", "comma-separated candidate counts")
	seed := fs.Int("seed", 0, "seed of the candidates' choice and of the noise")
	outPath := fs.String("out", "", "Markdown file to write (default: eval/<classifier>/calibration.md in the cache)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	ns, err := parseInts(*nFlag)
	if err != nil {
		return usagef("eval calibrate: -n: %v", err)
	}
	cfg, _, err := configs.Load(*config, nil, os.Environ())
	if err != nil {
		return err
	}
	dc := cfg.Data
	if *train != "" {
		dc.ClassifierTrain = *train
	}
	if *test != "" {
		dc.Test = *test
	}
	dc = eval.ClassifierData(dc)
	backend, err := engine.New()
	if err != nil {
		return err
	}
	tc, err := eval.ClassifierFor(backend, dc, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Printf("feature classifier %s: test accuracy %.2f%%\n", tc.Path, 100*tc.TestAccuracy)
	testSet, err := tc.LoadTestSet(backend, dc)
	if err != nil {
		return err
	}
	pool, err := eval.LoadSplit(dc, dc.Train)
	if err != nil {
		return err
	}
	rows, err := eval.Calibrate(backend, tc, testSet, pool, ns, uint64(*seed), os.Stdout)
	if err != nil {
		return err
	}
	md := eval.CalibrationMarkdown(rows, tc, dc.Train, dc.Test)
	fmt.Print("\n" + md)
	path := *outPath
	if path == "" {
		path = eval.CalibrationPath(tc.Path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := checkpoints.WriteFileAtomic(path, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", path)
	return nil
}

// evalRuns evaluates one or more runs at several step counts and prints one table.
func evalRuns(args []string) error {
	fs := newFlagSet("eval", "eval -run RUN_DIR [-run RUN_DIR2 …] [-model FILE …] [-data-test TEST.parquet] [-steps 1,2,4,8,50] [-sampler ddim,heun,…] [-schedule trailing,karras,ays.json] [-noise-correction on,off] [-checkpoint newest|best|STEP] [-cfg 2.0] [-n 10000] [-batch 250] [-prompts names|templates|FILE] [-decoder full|TINY_RUN[,…]] [-lora FILE[:strength]]... [-delta FILE[:strength]]...")
	var runs multiFlag
	fs.Var(&runs, "run", "run directory to evaluate (repeatable; DIR@1,2,4 gives that run its own step counts)")
	var modelFiles multiFlag
	fs.Var(&modelFiles, "model", "exported model file (fewstep export) to evaluate, alongside or instead of -run (repeatable; FILE@1,2,4 as for -run)")
	dataTest := fs.String("data-test", "", "test split to score against (default: data.test of the first run or model)")
	dataTrain := fs.String("data-train", "", "training split of the feature classifier (default: data.classifier_train, else data.train, of the first run or model)")
	stepsFlag := fs.String("steps", "1,2,4,8,50", "comma-separated step counts")
	sampler := fs.String("sampler", "", "comma-separated samplers: "+strings.Join(sampling.Samplers, ", ")+" (default: each run's sample.sampler)")
	schedule := fs.String("schedule", "", "comma-separated spacings ("+strings.Join(evalSpacings(), ", ")+") or schedule files (*.json; their step count replaces -steps); default: each run's sample.spacing")
	ckptFlag := fs.String("checkpoint", "newest", "checkpoint of every run: newest, best (early stopping's RUN/best.json) or a step")
	ncFlag := fs.String("noise-correction", "", "comma-separated noise correction settings to compare: auto, on, off (default: each run's sample.noise_correction)")
	cfgScale := fs.Float64("cfg", -1, "guidance scale (default: each run's sample.cfg)")
	n := fs.Int("n", 10000, "images per setting, balanced over classes")
	batch := fs.Int("batch", 0, "images per sampler call (default: each run's sample.batch_size)")
	seed := fs.Int("seed", 0, "seed of image 0 (image i uses seed+i)")
	prompts := fs.String("prompts", "", "text models: names (each class's name, the default), templates (each class's caption templates in turn) or a file of prompts, one a line, each naming a class")
	var loras, deltas multiFlag
	fs.Var(&deltas, "delta", "weight delta added to every evaluated model (export -delta), FILE or FILE:strength (repeatable)")
	fs.Var(&loras, "lora", "LoRA adapter file merged into every evaluated model, FILE or FILE:strength (repeatable)")
	decoderFlag := fs.String("decoder", "full", "latent models: full (the autoencoder's decoder) or the run directory of a tiny decoder distilled from it; one value for every latent model, or a comma-separated value per -run/-model in order")
	aeRun := fs.String("autoencoder", "", "score an autoencoder run (model.arch autoencoder) instead: PSNR, SSIM and rFID of its EMA reconstructions of the first -n test images")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *aeRun != "" {
		return evalAutoencoder(*aeRun, *n, *dataTest, *dataTrain)
	}
	steps, err := parseInts(*stepsFlag)
	if err != nil {
		return usagef("eval: -steps: %v", err)
	}
	for _, smp := range splitList(*sampler) {
		if !slices.Contains(sampling.Samplers, smp) {
			return usagef("eval: -sampler: unknown sampler %q (known: %s)", smp, strings.Join(sampling.Samplers, ", "))
		}
	}
	for _, sch := range splitList(*schedule) {
		if strings.HasSuffix(sch, ".json") {
			if _, err := sampling.ReadScheduleFile(sch); err != nil {
				return usagef("eval: -schedule: %v", err)
			}
		} else if !slices.Contains(evalSpacings(), sch) {
			return usagef("eval: -schedule: %q is neither a spacing (%s) nor a .json schedule file", sch, strings.Join(evalSpacings(), ", "))
		}
	}
	for _, nc := range splitList(*ncFlag) {
		if !slices.Contains(sampling.NoiseCorrections, nc) {
			return usagef("eval: -noise-correction: unknown value %q (known: %s)", nc, strings.Join(sampling.NoiseCorrections, ", "))
		}
	}
	specs, extra, err := runSpecs(runs)
	if err != nil {
		return err
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	mspecs, modelOut, tmp, err := modelSpecs(backend, modelFiles)
	defer func() {
		for _, d := range tmp {
			_ = os.RemoveAll(d)
		}
	}()
	if err != nil {
		return err
	}
	if specs = append(specs, mspecs...); len(specs) == 0 {
		return usagef("eval: -run RUN_DIR or -model FILE is required")
	}
	for i := range specs {
		if *dataTest != "" {
			specs[i].Job.Data.Test = *dataTest
		}
		if *dataTrain != "" {
			specs[i].Job.Data.ClassifierTrain = *dataTrain
		}
	}
	if err := prepareSpecs(specs, extra, backend, splitList(*decoderFlag), loras, deltas); err != nil {
		return err
	}
	dc := specs[0].Job.Data
	tc, err := eval.ClassifierFor(backend, dc, os.Stdout)
	if err != nil {
		return err
	}
	test, err := tc.LoadTestSet(backend, eval.ClassifierData(dc))
	if err != nil {
		return err
	}
	fmt.Printf("feature classifier %s: test accuracy %.2f%%\n", tc.Path, 100*tc.TestAccuracy)
	res, err := eval.Evaluate(backend, specs, tc, test, eval.Options{Steps: steps, Samplers: splitList(*sampler), Schedules: splitList(*schedule), NoiseCorrections: splitList(*ncFlag), Checkpoint: *ckptFlag, CFG: *cfgScale,
		N: *n, Batch: *batch, Seed: *seed, Prompts: *prompts, Out: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Print("\n" + eval.Markdown(res))
	dir := filepath.Join(string(specs[0].Job.RunDir), "eval")
	if len(runs) == 0 {
		dir = modelOut // not the temporary run directory of the first model
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		fn   func(string, *eval.Result) error
	}{{"eval.csv", eval.WriteCSV}, {"eval.json", eval.WriteJSON}, {"compare.png", eval.WriteComparison}} {
		if err := w.fn(filepath.Join(dir, w.name), res); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s/{eval.csv,eval.json,compare.png} (compare.png: one row per run and step count, same seeds per column)\n", dir)
	return nil
}

// prepareSpecs adjusts the evaluated models: -lora and -delta files merged into every model's
// weights when loaded (names get +lora, +delta), the decoder of every latent model attached, and
// -decoder's tiny decoders (one value for all, or one per model in order; names get +tiny).
func prepareSpecs(specs []eval.RunSpec, extra []specWeights, backend compute.Backend, decoders, globalLoras, globalDeltas []string) error {
	if len(decoders) != 1 && len(decoders) != len(specs) {
		return usagef("eval: -decoder: %d values for %d models (give one for all, or one per -run/-model in order)", len(decoders), len(specs))
	}
	for i := range specs {
		sp := &specs[i]
		loras, deltas := slices.Clone(globalLoras), slices.Clone(globalDeltas)
		if i < len(extra) {
			loras, deltas = append(loras, extra[i].loras...), append(deltas, extra[i].deltas...)
		}
		if len(loras)+len(deltas) > 0 {
			scope, files, ds := sampleScope(sp.Job.Sample.UseEMA), loras, deltas
			sp.Prepare = func(store *model.Store) error { return applyWeightFiles(store, scope, files, ds...) }
			if named := i < len(extra) && extra[i].named; len(loras) > 0 && !named {
				sp.Name += "+lora"
			}
			if named := i < len(extra) && extra[i].named; len(deltas) > 0 && !named {
				sp.Name += "+delta"
			}
		}
		if sp.Job.Decoder == nil { // runs on latent rows decode through their autoencoder
			if err := attachDecoder(&sp.Job, backend); err != nil {
				return fmt.Errorf("eval %s: %w", sp.Name, err)
			}
		}
		dec := decoders[min(i, len(decoders)-1)]
		if dec == "full" || (len(decoders) == 1 && sp.Job.Decoder == nil) {
			continue // one -decoder for all leaves pixel models as they are
		}
		if err := useTinyDecoder(&sp.Job, backend, dec); err != nil {
			return fmt.Errorf("eval %s: %w", sp.Name, err)
		}
		sp.Name += "+tiny"
	}
	return nil
}

// specWeights are the weight files of one -run value's options (+lora=, +delta=), merged into
// that run's weights only, after the global -lora and -delta files.
type specWeights struct {
	loras, deltas []string
	named         bool // +as= gave the run its table name: no +lora/+delta suffixes
}

// runSpecs loads the resolved configs of the run directories. A -run value is DIR, DIR@STEPS
// (that run's own comma-separated step counts, e.g. runs/mnist-ladd@1,2,4) or DIR,DIR2,…,
// followed by options +key=value that apply to that value's runs only:
//
//	+lora=FILE[:strength]   LoRA file merged into its weights (repeatable, in order)
//	+delta=FILE[:strength]  weight delta (export -delta) added to them (repeatable)
//	+sampler=NAME +spacing=NAME +cfg=W   its sample.sampler, sample.spacing, sample.cfg
//	+as=NAME                its name in the table (default: the directory's base name)
//
// e.g. -run 'runs/mnist-teacher@4+lora=lcm.safetensors+lora=quality.safetensors:0.8+sampler=renoise+cfg=1'.
func runSpecs(runs []string) ([]eval.RunSpec, []specWeights, error) {
	var specs []eval.RunSpec
	var extra []specWeights
	for _, arg := range runs {
		parts := strings.Split(arg, "+")
		head := parts[0]
		dirs := strings.Split(head, ",")
		var steps []int
		if dir, list, ok := strings.Cut(head, "@"); ok {
			var err error
			if steps, err = parseInts(list); err != nil {
				return nil, nil, usagef("eval: -run %s: steps after @: %v", arg, err)
			}
			dirs = []string{dir}
		}
		var w specWeights
		set := map[string]string{}
		for _, opt := range parts[1:] {
			key, val, ok := strings.Cut(opt, "=")
			if !ok || val == "" {
				return nil, nil, usagef("eval: -run %s: option %q: want +key=value (lora, delta, sampler, spacing, cfg, as)", arg, opt)
			}
			switch key {
			case "lora":
				w.loras = append(w.loras, val)
			case "delta":
				w.deltas = append(w.deltas, val)
			case "sampler":
				if !slices.Contains(sampling.Samplers, val) {
					return nil, nil, usagef("eval: -run %s: +sampler=%s: unknown sampler (known: %s)", arg, val, strings.Join(sampling.Samplers, ", "))
				}
				set[key] = val
			case "cfg":
				if _, err := strconv.ParseFloat(val, 64); err != nil {
					return nil, nil, usagef("eval: -run %s: +cfg=%s: not a number", arg, val)
				}
				set[key] = val
			case "spacing", "as":
				set[key] = val
			default:
				return nil, nil, usagef("eval: -run %s: unknown option +%s (known: lora, delta, sampler, spacing, cfg, as)", arg, key)
			}
		}
		for _, dir := range dirs {
			if dir = strings.TrimSpace(dir); dir == "" {
				continue
			}
			rd := checkpoints.RunDir(dir)
			if err := eval.CheckRun(rd); err != nil {
				return nil, nil, err
			}
			cfg, resolved, err := configs.Load(rd.ConfigPath(), nil, nil)
			if err != nil {
				return nil, nil, err
			}
			job := cfg.Job(resolved)
			job.RunDir = rd
			name := filepath.Base(filepath.Clean(dir))
			if v, ok := set["sampler"]; ok {
				job.Sample.Sampler = v
			}
			if v, ok := set["spacing"]; ok {
				job.Sample.Spacing = v
			}
			if v, ok := set["cfg"]; ok {
				job.Sample.CFG, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := set["as"]; ok {
				name, w.named = v, true
			}
			specs = append(specs, eval.RunSpec{Name: name, Job: job, Steps: steps})
			extra = append(extra, w)
		}
	}
	return specs, extra, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseInts parses "1,2,4" into positive ints.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// evalSpacings are the spacings -schedule accepts: all but list, whose times come from a run's
// sample.timesteps (a schedule file is eval's list).
func evalSpacings() []string {
	return slices.DeleteFunc(slices.Clone(sampling.Spacings), func(s string) bool { return s == "list" })
}

// evalAutoencoder prints the reconstruction metrics of an autoencoder run's newest EMA weights on
// the first n test images: PSNR, SSIM, and rFID (FID of the reconstructions against the whole
// test split, next to the same n originals' FID: the floor of that comparison).
func evalAutoencoder(runDir string, n int, dataTest, dataTrain string) error {
	rd := checkpoints.RunDir(runDir)
	cfg, _, err := configs.Load(rd.ConfigPath(), nil, nil)
	if err != nil {
		return err
	}
	if cfg.Model.Arch != models.ArchAutoencoder {
		return usagef("eval -autoencoder %s: model.arch is %q, not autoencoder", runDir, cfg.Model.Arch)
	}
	dc := cfg.Data
	if dataTest != "" {
		dc.Test = dataTest
	}
	if dataTrain != "" {
		dc.ClassifierTrain = dataTrain
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	store := model.NewStore()
	if _, err := trainer.InitWeights(store, runDir, true, nil); err != nil {
		return err
	}
	rec, err := autoenc.NewReconstructor(backend, store, cfg.Autoencoder, dc.Channels)
	if err != nil {
		return err
	}
	tc, err := eval.ClassifierFor(backend, dc, os.Stdout)
	if err != nil {
		return err
	}
	test, err := tc.LoadTestSet(backend, eval.ClassifierData(dc))
	if err != nil {
		return err
	}
	n = min(n, test.N)
	per := test.H * test.W * test.C
	orig, labels := test.Images[:n*per], test.Labels[:n]
	t0 := time.Now()
	out, err := rec.Reconstruct(orig, n, test.H, test.W, test.C, 250)
	if err != nil {
		return err
	}
	elapsed := time.Since(t0)
	ssim, err := autoenc.MeanSSIM(backend, orig, out, n, test.H, test.W, test.C, 250)
	if err != nil {
		return err
	}
	got, err := eval.ScoreSet(backend, tc, test, out, labels)
	if err != nil {
		return err
	}
	floor, err := eval.ScoreSet(backend, tc, test, orig, labels)
	if err != nil {
		return err
	}
	fmt.Printf("autoencoder %s (f = %d, %d latent channels), %d test images:\n", runDir, cfg.Autoencoder.Factor(), cfg.Autoencoder.LatentChannels, n)
	fmt.Printf("  PSNR %.2f dB  SSIM %.4f  rFID %.4f (the %d originals: %.4f)  class acc %.4f (originals %.4f)  %.2f ms/img encode+decode\n",
		autoenc.PSNR(orig, out, n), ssim, got["fid"], n, floor["fid"], got["class_accuracy"], floor["class_accuracy"], elapsed.Seconds()*1000/float64(n))
	return nil
}
