package eval

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/trainer"
)

// RunSpec is one model to evaluate: a run directory and its resolved config (as a trainer Job).
type RunSpec struct {
	Name  string
	Job   trainer.Job
	Steps []int // this run's step counts (nil: Options.Steps)
	// Prepare, when set, adjusts the loaded weights before sampling (e.g. merges LoRA files).
	Prepare func(*model.Store) error
}

// Options of Evaluate.
type Options struct {
	Steps    []int    // step counts to evaluate (e.g. 1, 2, 4, 8, 16, 50)
	Samplers []string // samplers to compare (empty keeps each run's sample.sampler)
	// Schedules are spacing names (trailing, karras, …) or schedule files (*.json, from `fewstep
	// schedule optimize`; their own step count replaces Steps). Empty keeps each run's spacing.
	Schedules []string
	// NoiseCorrections are sample.noise_correction values to compare (auto, on, off; Imagine Flash
	// §3.3); empty keeps each run's. Rows where it is active show the sampler as "<sampler>+nc".
	NoiseCorrections []string
	// Checkpoint picks each run's weights: "" or newest, best (RUN/best.json of early stopping;
	// the newest for runs without one) or a step number.
	Checkpoint string
	CFG        float64 // guidance scale; < 0 keeps each run's sample.cfg
	N          int     // images per setting (balanced over classes; image i has seed Seed+i)
	Batch      int     // images per sampler call (0 keeps each run's sample.batch_size)
	Seed       int
	K          int // neighbours of precision/recall (default 3)
	Compare    int // images per row of the comparison grid (default 10)
	// Prompts is the prompt set of text models: names (default), templates, or a file of prompts
	// that each name a class (see promptCond); class models ignore it.
	Prompts string
	Out     io.Writer
}

// Row is one line of the evaluation table.
type Row struct {
	Run       string  `json:"run"`
	Steps     int     `json:"steps"`
	Sampler   string  `json:"sampler"`
	Schedule  string  `json:"schedule"` // spacing name or schedule file name
	CFG       float64 `json:"cfg"`
	NFE       int     `json:"nfe"` // network evaluations per image, guidance counted
	N         int     `json:"n"`
	FID       float64 `json:"fid"`
	ClassAcc  float64 `json:"class_accuracy"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	// Confidence is the mean classifier probability of each image's own class (how prototypical
	// the generated images are; Emu-style quality tuning should raise it).
	Confidence float64 `json:"confidence"`
	MsPerImage float64 `json:"ms_per_image"`
	ImgPerS    float64 `json:"img_per_s"`
	Batch      int     `json:"batch"`
	Backend    string  `json:"backend"`
	// Prompts is the prompt set of a text model's row (names, templates or the file), else "".
	Prompts string `json:"prompts,omitempty"`
}

// Result is the table plus the comparison images: Compare[r] holds Options.Compare images
// [Compare, H, W, C] of row r, the same seeds in every row.
type Result struct {
	Rows          []Row
	Compare       [][]float32
	H, W, C       int
	ClassifierAcc float64
}

// Evaluate generates opts.N images for every (run, step count) with fixed per-image seeds and
// measures FID, class accuracy, precision/recall (k-NN, against the test split) and generation
// speed (compiled and warmed up first). tc is the dataset's feature classifier; test its test split.
func Evaluate(backend compute.Backend, runs []RunSpec, tc *TrainedClassifier, test *TestSet, opts Options) (*Result, error) {
	if opts.K <= 0 {
		opts.K = 3
	}
	if opts.Compare <= 0 {
		opts.Compare = 10
	}
	if opts.N < opts.Compare || opts.N < 2 {
		return nil, fmt.Errorf("eval: -n %d must be at least %d", opts.N, max(opts.Compare, 2))
	}
	testStats, err := FitGaussian(test.Features, test.N, FeatureDim)
	if err != nil {
		return nil, err
	}
	res := &Result{ClassifierAcc: tc.TestAccuracy}
	for _, run := range runs {
		store := model.NewStore()
		spec := opts.Checkpoint
		if _, ok, _ := checkpoints.ReadBest(run.Job.RunDir); spec == "best" && !ok {
			spec = "newest" // a run without evaluations (e.g. the pre-trained model of a before/after table)
		}
		step, err := trainer.ResolveCheckpoint(run.Job.RunDir, spec)
		if err != nil {
			return nil, err
		}
		if _, err := trainer.LoadWeights(run.Job.RunDir, step, store); err != nil {
			return nil, err
		}
		if run.Prepare != nil {
			if err := run.Prepare(store); err != nil {
				return nil, fmt.Errorf("eval %s: %w", run.Name, err)
			}
		}
		if hasScope(store, "teacher") { // a distilled student's checkpoint carries its teacher
			run.Job.Distilled = true
		}
		o := opts
		if run.Steps != nil {
			o.Steps = run.Steps
		}
		for _, set := range settings(o) {
			row, imgs, err := evaluateSetting(backend, store, run, set, tc, test, testStats, opts)
			if err != nil {
				return nil, fmt.Errorf("eval %s, %s: %w", run.Name, set, err)
			}
			res.Rows = append(res.Rows, row)
			res.H, res.W, res.C = run.Job.ImageShape()
			res.Compare = append(res.Compare, imgs[:opts.Compare*res.H*res.W*res.C])
			if opts.Out != nil {
				prompts := ""
				if row.Prompts != "" {
					prompts = " prompts " + row.Prompts
				}
				fmt.Fprintf(opts.Out, "%s  %s %s %2d steps (NFE %d)%s: FID %.3f  acc %.4f  P %.3f  R %.3f  %.2f ms/img\n",
					run.Name, row.Sampler, row.Schedule, row.Steps, row.NFE, prompts, row.FID, row.ClassAcc, row.Precision, row.Recall, row.MsPerImage)
			}
		}
	}
	return res, nil
}

// setting is one sampler configuration of the table.
type setting struct {
	sampler, schedule, nc string // "" keeps the run's
	steps                 int    // 0 with a schedule file
}

func (s setting) String() string {
	out := strings.TrimSpace(s.sampler + " " + s.schedule)
	if s.nc != "" {
		out = strings.TrimSpace(out + " noise correction " + s.nc)
	}
	if s.steps > 0 {
		out = strings.TrimSpace(fmt.Sprintf("%s %d steps", out, s.steps))
	}
	return out
}

// settings expands samplers × schedules × step counts (schedule files carry their own steps).
func settings(opts Options) []setting {
	samplers, schedules := opts.Samplers, opts.Schedules
	if len(samplers) == 0 {
		samplers = []string{""}
	}
	if len(schedules) == 0 {
		schedules = []string{""}
	}
	ncs := opts.NoiseCorrections
	if len(ncs) == 0 {
		ncs = []string{""}
	}
	var out []setting
	for _, smp := range samplers {
		for _, sch := range schedules {
			for _, nc := range ncs {
				if strings.HasSuffix(sch, ".json") {
					out = append(out, setting{sampler: smp, schedule: sch, nc: nc})
					continue
				}
				for _, n := range opts.Steps {
					out = append(out, setting{sampler: smp, schedule: sch, nc: nc, steps: n})
				}
			}
		}
	}
	return out
}

// evaluateSetting generates and scores one setting of one run; it returns the row and the images.
func evaluateSetting(backend compute.Backend, store *model.Store, run RunSpec, set setting, tc *TrainedClassifier,
	test *TestSet, testStats Stats, opts Options) (Row, []float32, error) {
	job := run.Job
	sc := job.Sample
	if set.steps > 0 {
		sc.Steps = set.steps
	}
	if set.sampler != "" {
		sc.Sampler = set.sampler
	}
	if set.nc != "" {
		sc.NoiseCorrection = set.nc
	}
	label := sc.Spacing
	switch {
	case strings.HasSuffix(set.schedule, ".json"):
		sc.ScheduleFile, label = set.schedule, filepath.Base(set.schedule)
	case set.schedule != "":
		sc.Spacing, label = set.schedule, set.schedule
	}
	if opts.CFG >= 0 {
		sc.CFG = opts.CFG
	}
	if opts.Batch > 0 {
		sc.BatchSize = opts.Batch
	}
	job.Sample = sc
	smp, err := trainer.GridSampler(backend, store, job)
	if err != nil {
		return Row{}, nil, err
	}
	h, _, c := job.ImageShape()
	k := job.Model.NumClasses
	seeds, classes := balanced(opts.N, k, opts.Seed)
	cond, prompts := classes, ""
	if job.Model.Text.On() {
		if cond, classes, err = promptCond(job.Model, opts.Prompts, classes); err != nil {
			return Row{}, nil, err
		}
		if prompts = opts.Prompts; prompts == "" {
			prompts = PromptsNames
		}
	}
	cw := job.Model.CondWidth()
	if _, err := job.Images(smp, seeds[:min(sc.BatchSize, opts.N)], cond[:min(sc.BatchSize, opts.N)*cw]); err != nil {
		return Row{}, nil, err // warm-up: compiles the executors for the batch shape
	}
	t0 := time.Now() // generation time: sampling, and decoding for a latent run
	imgs, err := job.Images(smp, seeds, cond)
	elapsed := time.Since(t0)
	if err != nil {
		return Row{}, nil, err
	}
	m, err := scoreImages(backend, tc, test, testStats, imgs, classes, h, c, opts.K)
	if err != nil {
		return Row{}, nil, err
	}
	name := sc.Sampler
	if smp.NoiseCorrection() {
		name += "+nc"
	}
	row := Row{Run: run.Name, Steps: len(smp.Times()) - 1, Sampler: name, Schedule: label, CFG: sc.CFG, NFE: smp.NFE(), N: opts.N,
		Batch: sc.BatchSize, Backend: backend.Name(), ClassAcc: m["class_accuracy"], FID: m["fid"], Precision: m["precision"],
		Recall: m["recall"], Confidence: m["confidence"],
		MsPerImage: elapsed.Seconds() * 1000 / float64(opts.N), ImgPerS: float64(opts.N) / elapsed.Seconds(), Prompts: prompts}
	return row, imgs, nil
}

// meanConfidence is the mean classifier probability p(class_i | image_i) over images [n, h, h, c].
func meanConfidence(backend compute.Backend, tc *TrainedClassifier, imgs []float32, classes []int32, h, c int) (float64, error) {
	n := len(classes)
	p, err := tc.Probabilities(backend, imgs, n, h, h, c)
	if err != nil {
		return 0, err
	}
	k := len(p) / n
	sum := 0.0
	for i, cl := range classes {
		sum += float64(ClassConfidence(p[i*k:(i+1)*k], int(cl)))
	}
	return sum / float64(n), nil
}

func hasScope(store *model.Store, scope string) bool {
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+scope+"/") {
			return true
		}
	}
	return false
}

// balanced returns n seeds (seed+i) and classes cycling through 0…k−1, so every class gets
// n/k images (±1) and image i is the same in every setting.
func balanced(n, k, seed int) ([]uint64, []int32) {
	seeds := make([]uint64, n)
	classes := make([]int32, n)
	for i := range n {
		seeds[i] = uint64(seed + i)
		classes[i] = int32(i % k)
	}
	return seeds, classes
}

// CheckRun verifies that a run directory has a checkpoint.
func CheckRun(dir checkpoints.RunDir) error {
	steps, err := checkpoints.List(dir)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		return fmt.Errorf("%s: no checkpoint to evaluate", dir)
	}
	return nil
}
