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
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

func cmdSample(args []string) error {
	fs := newFlagSet("sample", "sample -run RUN_DIR | -model FILE [-lora FILE[:strength]]... [-delta FILE[:strength]]... [-decoder full|TINY_RUN] [-sampler ddim] [-steps 50] [-spacing trailing | -schedule FILE] [-cfg 2.0] [-class 3|all | -prompt TEXT... | -prompts FILE] [-n 64] [-seed 0] [-out grid.png|DIR/]")
	runDir := fs.String("run", "", "run directory (this or -model)")
	modelFile := fs.String("model", "", "exported model file (fewstep export) instead of -run")
	steps := fs.Int("steps", 0, "sampler steps (default: the run's sample.steps)")
	sampler := fs.String("sampler", "", "solver: "+strings.Join(sampling.Samplers, ", ")+" (default: the run's sample.sampler)")
	spacing := fs.String("spacing", "", "timestep spacing: "+strings.Join(sampling.Spacings, ", ")+" (default: the run's sample.spacing)")
	schedule := fs.String("schedule", "", "schedule file from `fewstep schedule optimize` (replaces the spacing and -steps)")
	eta := fs.Float64("eta", math.NaN(), "DDIM stochasticity in [0, 1] (default: the run's sample.eta)")
	cfgScale := fs.Float64("cfg", math.NaN(), "classifier-free guidance scale (default: the run's sample.cfg)")
	class := fs.String("class", "all", "class index, or all for one row per class")
	var promptFlags multiFlag
	fs.Var(&promptFlags, "prompt", "caption of a text model (repeatable; one grid row per prompt)")
	var loras, deltas multiFlag
	fs.Var(&deltas, "delta", "weight delta to add before sampling (export -delta), FILE or FILE:strength (repeatable)")
	fs.Var(&loras, "lora", "LoRA adapter file to merge before sampling, FILE or FILE:strength (repeatable: adapters add up)")
	decoderFlag := fs.String("decoder", "full", "latent models: full (the autoencoder's decoder) or the run directory of a tiny decoder (model.arch tiny_decoder) distilled from it")
	promptsFile := fs.String("prompts", "", "file of prompts, one a line (blank lines and # comments skipped): one grid row per prompt")
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
	prompts, err := readPrompts(promptFlags, *promptsFile)
	if err != nil {
		return err
	}
	set, err := sampleLayout(*class, prompts, *n, sc, job.Model)
	if err != nil {
		return err
	}
	seeds, cols := set.seeds, set.cols
	backend, err := engine.New()
	if err != nil {
		return err
	}
	store := model.NewStore()
	step, err := loadWeights(backend, store)
	if err != nil {
		return err
	}
	if err := applyWeightFiles(store, sampleScope(sc.UseEMA), loras, deltas...); err != nil {
		return err
	}
	if *decoderFlag != "full" {
		if err := useTinyDecoder(job, backend, *decoderFlag); err != nil {
			return err
		}
	}
	job.Sample = sc
	s, err := trainer.GridSampler(backend, store, *job)
	if err != nil {
		return err
	}
	if isDirTarget(*out) {
		if err := writeSampleDir(*out, s, *job, set, sc.BatchSize); err != nil {
			return err
		}
		fmt.Printf("wrote %d PNGs and labels.csv to %s (checkpoint step %d, %s weights, %d %s steps, cfg %.2g)\n",
			len(seeds), *out, step, map[bool]string{true: "EMA", false: "raw"}[sc.UseEMA], sc.Steps, sc.Sampler, sc.CFG)
		return nil
	}
	imgs, err := job.Images(s, seeds, set.cond)
	if err != nil {
		return err
	}
	side, _, ch := job.ImageShape()
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

// sampleScope is the weight set a sampler reads: /ema or /model.
func sampleScope(ema bool) string {
	if ema {
		return trainer.EMAScope
	}
	return trainer.ModelScope
}

// isDirTarget reports whether -out names a directory (ends with a slash or exists as one).
func isDirTarget(out string) bool {
	if strings.HasSuffix(out, "/") {
		return true
	}
	st, err := os.Stat(out)
	return err == nil && st.IsDir()
}

// sampleSet is what `fewstep sample` generates: per image its seed, condition row (width values
// each) and label (-1: the prompt names no class), the prompt of a text model, and the grid columns.
type sampleSet struct {
	seeds   []uint64
	cond    []int32
	width   int
	labels  []int32
	prompts []string
	cols    int
}

// writeSampleDir generates the images batch by batch and writes one PNG per image plus
// labels.csv for external scorers: file,label,seed (class models) or file,prompt,seed,label (text
// models; label empty when the prompt names no class).
func writeSampleDir(dir string, s *sampling.Sampler, job trainer.Job, set sampleSet, batch int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var csv strings.Builder
	if set.prompts != nil {
		csv.WriteString("file,prompt,seed,label\n")
	} else {
		csv.WriteString("file,label,seed\n")
	}
	side, _, ch := job.ImageShape()
	per := side * side * ch
	seeds, w := set.seeds, set.width
	for start := 0; start < len(seeds); start += batch {
		end := min(start+batch, len(seeds))
		imgs, err := job.Images(s, seeds[start:end], set.cond[start*w:end*w])
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
			if set.prompts == nil {
				fmt.Fprintf(&csv, "%s,%d,%d\n", name, set.labels[i], seeds[i])
				continue
			}
			label := ""
			if set.labels[i] >= 0 {
				label = strconv.Itoa(int(set.labels[i]))
			}
			fmt.Fprintf(&csv, "%s,%s,%d,%s\n", name, csvField(set.prompts[i]), seeds[i], label)
		}
	}
	return checkpoints.WriteFileAtomic(filepath.Join(dir, "labels.csv"), []byte(csv.String()), 0o644)
}

// csvField quotes a CSV field when it holds a comma, quote or newline (RFC 4180).
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\n\r") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// readPrompts returns the -prompt flags followed by the lines of -prompts FILE (trimmed; blank
// lines and lines starting with # skipped).
func readPrompts(flags []string, file string) ([]string, error) {
	prompts := append([]string(nil), flags...)
	if file == "" {
		return prompts, nil
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("-prompts: %v", err)
	}
	for _, line := range strings.Split(string(text), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			prompts = append(prompts, line)
		}
	}
	if len(prompts) == len(flags) {
		return nil, usagef("-prompts: %s has no prompts (one a line)", file)
	}
	return prompts, nil
}

// sampleLayout returns the images of -class/-prompt/-n: for a class model one row per class
// (-class all) or a square grid of one class; for a text model one row per prompt (default: the
// run's sample.prompts, else the class names of its training data).
func sampleLayout(class string, prompts []string, n int, sc sampling.Config, mc models.Config) (sampleSet, error) {
	if mc.Text.On() {
		if len(prompts) == 0 {
			prompts = sc.Prompts
		}
		if len(prompts) == 0 {
			prompts = mc.Text.ClassNames
		}
		if len(prompts) == 0 {
			return sampleSet{}, usagef("sample: this text model needs -prompt TEXT or -prompts FILE")
		}
		return promptSet(prompts, n, sc, mc)
	}
	if len(prompts) > 0 {
		return sampleSet{}, usagef("sample: -prompt/-prompts: this model is class-conditional (model.text.source %q); use -class", mc.Text.Source)
	}
	set := sampleSet{width: 1}
	numClasses := mc.NumClasses
	if class == "all" {
		if n <= 0 {
			n = sc.PerClass
		}
		for c := range numClasses {
			for j := range n {
				set.seeds = append(set.seeds, uint64(sc.Seed+c*n+j))
				set.labels = append(set.labels, int32(c))
			}
		}
		set.cond, set.cols = set.labels, n
		return set, nil
	}
	c, err := strconv.Atoi(class)
	if err != nil || c < 0 || c >= numClasses {
		names := ""
		if numClasses == len(data.MNISTClassNames) {
			names = " (MNIST: 0=zero … 9=nine)"
		}
		return sampleSet{}, usagef("sample: -class %q: want an index in [0, %d) or all%s", class, numClasses, names)
	}
	if n <= 0 {
		n = 64
	}
	for j := range n {
		set.seeds = append(set.seeds, uint64(sc.Seed+j))
		set.labels = append(set.labels, int32(c))
	}
	set.cond, set.cols = set.labels, int(math.Ceil(math.Sqrt(float64(n))))
	return set, nil
}

// promptSet lays out n images per prompt (rows = prompts) for a text model: seeds sc.Seed+row·n+j,
// the null class (or, under model.text.with_class, the class the prompt names), labels from
// data.ClassOfPrompt over the model's class names and caption templates.
func promptSet(prompts []string, n int, sc sampling.Config, mc models.Config) (sampleSet, error) {
	if n <= 0 {
		n = sc.PerClass
	}
	templates, _ := data.CaptionTemplatesOf(mc.Text.ClassNames)
	set := sampleSet{width: mc.CondWidth(), cols: n}
	for r, p := range prompts {
		label := int32(-1)
		if c, ok := data.ClassOfPrompt(mc.Text.ClassNames, templates, p); ok {
			label = int32(c)
		}
		for j := range n {
			set.seeds = append(set.seeds, uint64(sc.Seed+r*n+j))
			set.labels = append(set.labels, label)
			set.prompts = append(set.prompts, p)
		}
	}
	cond, unknown, err := sampling.PromptCond(mc, set.prompts, set.labels)
	if err != nil {
		return sampleSet{}, usagef("sample: %v", err)
	}
	if len(unknown) > 0 {
		fmt.Fprintf(os.Stderr, "sample: warning: words outside the model's vocabulary (read as <unk>): %s\n", strings.Join(unknown, ", "))
	}
	set.cond = cond
	return set, nil
}
