package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
)

// ErrInterrupted is returned when a run stopped on SIGINT/SIGTERM (after writing a checkpoint).
var ErrInterrupted = errors.New("training interrupted")

// Job is everything a training run needs, assembled from a resolved run config.
type Job struct {
	RunDir     checkpoints.RunDir
	Seed       uint64
	Data       data.Config
	Model      models.Config
	Diffusion  models.DiffusionConfig
	Trainer    Config
	Sample     sampling.Config
	ConfigYAML []byte // the resolved config, written to RUN/config.yaml and into every checkpoint
	Distilled  bool   // a few-step student (sampling's noise_correction "auto")
	// StudentTimes are the times a distilled student trains at (sample.spacing "student"); the
	// sampler sees them only when Distilled.
	StudentTimes []float64
	// Decoder maps the samples of a run on latent rows (fewstep data encode) to images: grids,
	// `sample` and `eval` decode through it (cmd/fewstep loads it from the data's metadata or an
	// exported file). nil for image runs.
	Decoder LatentDecoder
}

// Latent reports whether the job's data are latents (it has a decoder): unbounded values that
// samplers and distillation targets must not clip to the pixels' [-1, 1].
func (j Job) Latent() bool { return j.Decoder != nil }

// InputShape is the denoiser's input [h, w, c]: the latent's for a run on latent rows, else
// data.image_size² × data.channels.
func (j Job) InputShape() (h, w, c int) {
	if j.Decoder != nil {
		return j.Decoder.LatentShape()
	}
	return j.Data.ImageSize, j.Data.ImageSize, j.Data.Channels
}

// ImageShape is the shape of the images the job generates (decoded for a run on latent rows).
func (j Job) ImageShape() (h, w, c int) {
	if j.Decoder != nil {
		return j.Decoder.ImageShape()
	}
	return j.Data.ImageSize, j.Data.ImageSize, j.Data.Channels
}

// Images generates one image per seed with s (a sampler of this job) at the job's input shape
// and decodes latents, sample.batch_size at a time (one decoder shape, and memory bounded by the
// batch rather than by len(seeds)): images [len(seeds), ImageShape()] in about [−1, 1].
func (j Job) Images(s *sampling.Sampler, seeds []uint64, cond []int32) ([]float32, error) {
	h, w, c := j.InputShape()
	out, err := s.Sample(seeds, cond, h, w, c)
	if err != nil || j.Decoder == nil {
		return out, err
	}
	H, W, C := j.Decoder.ImageShape()
	per, batch := h*w*c, max(j.Sample.BatchSize, 1)
	imgs := make([]float32, 0, len(seeds)*H*W*C)
	for start := 0; start < len(seeds); start += batch {
		end := min(start+batch, len(seeds))
		dec, err := j.Decoder.Decode(out[start*per:end*per], end-start)
		if err != nil {
			return nil, fmt.Errorf("decode latents: %w", err)
		}
		imgs = append(imgs, dec...)
	}
	return imgs, nil
}

// Method is one optimization step of a run: the diffusion loss for teachers (the default), a
// distillation method's generator and discriminator updates for students.
type Method interface {
	// Step runs optimizer step `step` (0-based) on b (x0, eps, t ~ U(0, t_max) and cond drawn by
	// the loop); further random numbers come from rng, the run's checkpointed PCG.
	Step(step int, b *Batch, rng *rand.Rand) (StepResult, error)
}

// MethodFactory builds a run's method once store holds the restored variables (resumed) or none.
type MethodFactory func(backend compute.Backend, store *model.Store, job Job, resumed bool) (Method, error)

// diffusionMethod is the teacher's objective: the diffusion loss of one batch.
type diffusionMethod struct{ step *Step }

func (m diffusionMethod) Step(step int, b *Batch, _ *rand.Rand) (StepResult, error) {
	return m.step.Run(b, step)
}

// Options control one invocation of Train.
type Options struct {
	Resume bool          // continue from the newest checkpoint of Job.RunDir
	Out    io.Writer     // progress and messages
	TTY    bool          // Out is a terminal: draw a progress bar
	StopAt int           // if > 0, stop (with a checkpoint) once this many steps are done
	Method MethodFactory // nil: the diffusion loss of the job's denoiser
	Label  string        // progress bar label ("train" if empty)
	// Evaluate scores the current weights (store) every trainer.eval_every steps: metric name →
	// value (trainer.EvalMetrics); the eval package provides it (cmd/fewstep wires it in).
	Evaluate func(step int, store *model.Store) (map[string]float64, error)
	// AfterGrid runs after each sample grid (cmd/fewstep refreshes RUN/report.html); an error is
	// reported, not fatal.
	AfterGrid func() error
}

// Result summarizes a finished (or stopped) run.
type Result struct {
	Steps      int
	LastLoss   float64
	Checkpoint string
	Grid       string
	// BestStep and Best are the best evaluation's step and trainer.eval_metric value (0 without
	// evaluations); EarlyStopped is set when patience ran out.
	BestStep     int
	Best         float64
	EarlyStopped bool
}

// Train runs (or resumes) a teacher training run. It returns ErrInterrupted, wrapped, when ctx is
// cancelled; a checkpoint of the last completed step is written first.
func Train(ctx context.Context, backend compute.Backend, job Job, opt Options) (*Result, error) {
	if err := job.Trainer.Validate(); err != nil {
		return nil, err
	}
	r, err := newRun(backend, job, opt)
	if err != nil {
		return nil, err
	}
	defer r.close()
	return r.loop(ctx)
}

// run is the state of one Train invocation.
type run struct {
	job     Job
	opt     Options
	backend compute.Backend
	store   *model.Store
	den     *models.Denoiser
	stream  *data.Stream
	info    data.Info
	dbatch  *data.Batch
	method  Method
	rng     *rand.Rand
	hs      hostState
	metrics *metricsLog
	prog    *progress
	sampler *sampling.Sampler
}

func newRun(backend compute.Backend, job Job, opt Options) (_ *run, err error) {
	r := &run{job: job, opt: opt, backend: backend, store: model.NewStore()}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if err := r.prepareDir(); err != nil {
		return nil, err
	}
	switch c := job.Data.Condition; {
	case c == data.ConditionCaption && job.Model.Text.Source != models.TextLearned:
		return nil, fmt.Errorf("data.condition: caption needs model.text.source: learned")
	case c == data.ConditionTextEmbedding && !job.Model.Text.Column():
		return nil, fmt.Errorf("data.condition: %q (precomputed text embeddings) needs model.text.source: column", c)
	case job.Model.Text.Column() && c != data.ConditionTextEmbedding:
		return nil, fmt.Errorf("model.text.source: column needs data.condition: text_embedding, got %q", c)
	case job.Model.Text.Column() && job.Model.Text.EmbeddingDim <= 0:
		return nil, fmt.Errorf("model.text.embedding_dim: unknown: it is read from the text_embedding column of data.train (%s) when the config loads; the files are missing or have no embeddings", job.Data.Train)
	case job.Model.Text.Column():
	case job.Model.Text.On() && c != data.ConditionCaption:
		return nil, fmt.Errorf("model.text.source: learned needs data.condition: caption, got %q", c)
	case job.Model.Text.On() && len(job.Model.Text.Vocab) < 2:
		return nil, fmt.Errorf("model.text.vocab: empty: it is read from the metadata of data.train (%s) when the config loads; the files are missing or have no vocabulary — import them with `fewstep data import …`", job.Data.Train)
	}
	if job.Model.FirstStage() { // no denoiser: the method trains the autoencoder or a tiny decoder
		if opt.Method == nil {
			return nil, fmt.Errorf("model.arch: %s runs train with their own method (fewstep train picks it)", job.Model.Arch)
		}
	} else if r.den, _, err = models.NewDenoiser(job.Model, job.Diffusion, job.Seed); err != nil {
		return nil, err
	}
	if opt.Resume {
		if r.hs, err = restoreState(job.RunDir, r.store); err != nil {
			return nil, err
		}
	} else {
		r.hs = hostState{PCG: rand.NewPCG(job.Seed, 0x5eed)}
		if job.Model.LoRA != nil && job.Model.LoRA.On() && job.Trainer.InitFrom == "" && opt.Method == nil {
			return nil, fmt.Errorf("lora: adapters train on a base model: set trainer.init_from (a run directory or exported model file)")
		}
		if job.Trainer.InitFrom != "" && opt.Method == nil { // distillation methods init their student
			if _, err = InitWeights(r.store, job.Trainer.InitFrom, job.Trainer.InitEMA, job.Model.UsesVariable); err != nil {
				return nil, err
			}
		}
	}
	if r.stream, err = data.Open(job.Data, job.Trainer.BatchSize, job.Seed); err != nil {
		return nil, err
	}
	r.info = r.stream.Info()
	if r.info.LatentScale > 0 && job.Decoder == nil {
		return nil, fmt.Errorf("data.train %s holds latent rows (fewstep data encode): the run needs the autoencoder's decoder for its grids (fewstep train loads it from the file's metadata)", job.Data.Train)
	}
	if tc := job.Model.Text; tc.Column() && r.info.EmbeddingDim != tc.EmbeddingDim {
		return nil, fmt.Errorf("data.train %s: text_embedding has %d values, model.text.embedding_dim is %d", job.Data.Train, r.info.EmbeddingDim, tc.EmbeddingDim)
	}
	r.dbatch = data.NewBatch(r.info, job.Data, job.Trainer.BatchSize)
	if opt.Resume {
		if err = r.stream.SetPosition(r.hs.Data); err != nil {
			return nil, err
		}
	}
	r.rng = rand.New(r.hs.PCG)
	if opt.Method == nil {
		var st *Step
		if st, err = NewStep(backend, r.store, r.den, job.Trainer); err != nil {
			return nil, err
		}
		r.method = diffusionMethod{st}
	} else if r.method, err = opt.Method(backend, r.store, job, opt.Resume); err != nil {
		return nil, err
	}
	if r.metrics, err = openMetrics(job.RunDir.MetricsPath(), r.hs.Step); err != nil {
		return nil, err
	}
	return r, nil
}

// prepareDir creates the run directory; a fresh run refuses a directory that already has checkpoints.
func (r *run) prepareDir() error {
	dir := r.job.RunDir
	if !r.opt.Resume {
		if steps, _ := checkpoints.List(dir); len(steps) > 0 {
			return fmt.Errorf("run directory %s already has checkpoints (newest step %d): resume it with `fewstep train -resume %s` or choose another run.name",
				dir, steps[len(steps)-1], dir)
		}
	} else if _, err := os.Stat(string(dir)); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if err := dir.Create(); err != nil {
		return err
	}
	return checkpoints.WriteFileAtomic(dir.ConfigPath(), r.job.ConfigYAML, 0o644)
}

func (r *run) loop(ctx context.Context) (*Result, error) {
	cfg := r.job.Trainer
	r.prog = newProgress(r.opt.Out, r.opt.TTY, r.hs.Step, cfg.Steps, r.opt.Label)
	res := &Result{}
	batch := r.newBatch()
	lastLog, lastLogStep := time.Now(), r.hs.Step
	start := time.Now()
	firstStep := true
	for r.hs.Step < cfg.Steps {
		if ctx.Err() != nil {
			return res, r.interrupted()
		}
		if err := r.fillBatch(batch); err != nil {
			return res, err
		}
		out, err := r.method.Step(r.hs.Step, batch, r.rng)
		if err != nil {
			return res, err
		}
		if !out.Applied {
			return res, r.nonFinite(out)
		}
		if firstStep && r.opt.Out != nil {
			if n, total := AdapterParams(r.store); n > 0 {
				fmt.Fprintf(r.opt.Out, "LoRA: %d adapter parameters trained, %.1f%% of the model's %d (base frozen)\n", n, 100*float64(n)/float64(total), total)
			}
		}
		firstStep = false
		r.hs.Step++
		r.hs.Data = r.stream.Position()
		res.Steps, res.LastLoss = r.hs.Step, out.Loss
		var rec *Record
		if r.hs.Step%cfg.LogEvery == 0 || r.hs.Step == cfg.Steps {
			rec = &Record{Step: r.hs.Step, Loss: out.Loss, GradNorm: out.GradNorm, LR: LR(cfg, r.hs.Step-1), Terms: out.Terms,
				ImgPerS: float64((r.hs.Step-lastLogStep)*cfg.BatchSize) / time.Since(lastLog).Seconds(),
				Epoch:   r.hs.Data.Epoch, Elapsed: time.Since(start).Seconds()}
			lastLog, lastLogStep = time.Now(), r.hs.Step
		}
		last := r.hs.Step == cfg.Steps || r.hs.Step == r.opt.StopAt
		evalNow := cfg.EvalEvery > 0 && (r.hs.Step%cfg.EvalEvery == 0 || r.hs.Step == cfg.Steps)
		if evalNow {
			if rec, err = r.evaluate(rec, out); err != nil {
				return res, err
			}
		}
		if rec != nil {
			if err := r.metrics.write(*rec); err != nil {
				return res, err
			}
		}
		r.prog.update(r.hs.Step, rec)
		stop := evalNow && cfg.Patience > 0 && r.hs.Eval.Stale >= cfg.Patience
		if r.hs.Step%cfg.CheckpointEvery == 0 || last || evalNow {
			if res.Checkpoint, err = r.checkpoint(); err != nil {
				return res, err
			}
		}
		if evalNow && r.hs.Eval.BestStep == r.hs.Step {
			if err := writeBest(r.job.RunDir, r.hs.Eval, cfg.EvalMetric); err != nil {
				return res, err
			}
		}
		if (cfg.SampleEvery > 0 && r.hs.Step%cfg.SampleEvery == 0) || r.hs.Step == cfg.Steps || stop {
			if res.Grid, err = r.grid(); err != nil {
				return res, err
			}
			if r.opt.AfterGrid != nil { // e.g. the run report; its failure does not stop training
				if err := r.opt.AfterGrid(); err != nil {
					r.prog.message("step %d: %v", r.hs.Step, err)
				}
			}
		}
		res.BestStep, res.Best = r.hs.Eval.BestStep, r.hs.Eval.Best
		if stop {
			res.EarlyStopped = true
			r.prog.message("early stop at step %d: no %s improvement in %d evaluations; best step %d (%s %.4g), see %s",
				r.hs.Step, cfg.EvalMetric, cfg.Patience, r.hs.Eval.BestStep, cfg.EvalMetric, r.hs.Eval.Best, r.job.RunDir.BestPath())
			break
		}
		if r.hs.Step == r.opt.StopAt {
			break
		}
	}
	r.prog.finish()
	return res, nil
}

// evaluate runs Options.Evaluate on the current weights, updates the early-stopping state and
// returns the step's metrics record with the evaluation added (every evaluation step gets one).
func (r *run) evaluate(rec *Record, out StepResult) (*Record, error) {
	if r.opt.Evaluate == nil {
		return rec, fmt.Errorf("trainer.eval_every: this command has no evaluator (use fewstep train/finetune/distill)")
	}
	m, err := r.opt.Evaluate(r.hs.Step, r.store)
	if err != nil {
		return rec, fmt.Errorf("evaluation at step %d: %w", r.hs.Step, err)
	}
	metric := r.job.Trainer.EvalMetric
	v, ok := m[metric]
	if !ok {
		return rec, fmt.Errorf("evaluation at step %d: no %s among %v", r.hs.Step, metric, m)
	}
	r.hs.Eval.update(r.hs.Step, v, LowerIsBetter(metric))
	if rec == nil {
		rec = &Record{Step: r.hs.Step, Loss: out.Loss, GradNorm: out.GradNorm, LR: LR(r.job.Trainer, r.hs.Step-1), Terms: out.Terms,
			Epoch: r.hs.Data.Epoch}
	}
	rec.Eval = m
	r.prog.message("eval at step %d: %s %.4g (best %.4g at step %d)", r.hs.Step, metric, v, r.hs.Eval.Best, r.hs.Eval.BestStep)
	return rec, nil
}

// interrupted writes a checkpoint of the last completed step (none before the first step) and
// returns the ErrInterrupted error.
func (r *run) interrupted() error {
	if r.hs.Step == 0 {
		r.prog.message("interrupted before the first step; nothing to save")
		return fmt.Errorf("%w before the first step", ErrInterrupted)
	}
	path, err := r.checkpoint()
	if err != nil {
		return errors.Join(fmt.Errorf("%w at step %d", ErrInterrupted, r.hs.Step), err)
	}
	r.prog.message("interrupted at step %d; checkpoint %s (continue with: fewstep train -resume %s)", r.hs.Step, path, r.job.RunDir)
	return fmt.Errorf("%w at step %d", ErrInterrupted, r.hs.Step)
}

// newBatch allocates the host buffers of one step (x0 and the stored noise are the data stream's
// batch buffers).
func (r *run) newBatch() *Batch {
	info, b := r.info, r.job.Trainer.BatchSize
	n := b * info.H * info.W * info.C
	cw := r.job.Model.CondWidth()
	return &Batch{X0: r.dbatch.X, Noise: r.dbatch.Noise, Eps: make([]float32, n), T: make([]float32, b), Cond: make([]int32, b*cw),
		B: b, H: info.H, W: info.W, C: info.C, CondWidth: cw}
}

// close releases the data stream and the metrics file.
func (r *run) close() {
	if r.stream != nil {
		if st := r.stream.Stats(); st.Skipped > 0 && r.opt.Out != nil {
			fmt.Fprintln(r.opt.Out, st.String())
		}
		r.stream.Close()
	}
	if r.metrics != nil {
		r.metrics.Close()
	}
}

// fillBatch draws the next data batch, then t ~ U(0, t_max), condition dropout and eps, in that
// order, from the run's PCG (so a resumed run draws the same numbers).
func (r *run) fillBatch(b *Batch) error {
	if err := r.stream.Next(r.dbatch); err != nil {
		return err
	}
	if err := FillCond(b, r.dbatch, r.job.Model, r.job.Data.Condition); err != nil {
		return fmt.Errorf("%s (%s), batch of step %d: %w", data.ColTextEmbedding, r.job.Data.Train, r.hs.Step+1, err)
	}
	rng := r.rng
	tMax := r.job.Diffusion.TMax
	for i := range b.T {
		b.T[i] = float32(rng.Float64() * tMax)
	}
	for i := range b.B {
		if rng.Float64() < r.job.Trainer.CondDropout {
			DropCond(b, i, r.job.Model.NumClasses)
		}
	}
	for i := range b.Eps {
		b.Eps[i] = float32(rng.NormFloat64())
	}
	return nil
}

// FillCond writes the condition rows of b from the data batch: the label (the null class under
// data.condition none, or for a text model without model.text.with_class), then, for a text model,
// the caption's token ids, or for model.text.source column the text_embedding in fixed point
// (models.EncodeEmbedding; an error names the example and value out of range).
func FillCond(b *Batch, d *data.Batch, mc models.Config, condition string) error {
	w := max(b.CondWidth, 1)
	null := int32(mc.NumClasses)
	for i := range b.B {
		row := b.Cond[i*w : (i+1)*w]
		switch {
		case condition == data.ConditionNone, mc.Text.On() && !mc.Text.WithClass:
			row[0] = null
		default:
			row[0] = d.Labels[i]
		}
		switch {
		case w > 1 && mc.Text.Column():
			e := d.EmbeddingDim
			if err := models.EncodeEmbedding(row[1:], d.TextEmbedding[i*e:(i+1)*e]); err != nil {
				return fmt.Errorf("example %d: %w", i, err)
			}
		case w > 1:
			copy(row[1:], d.Tokens[i*d.MaxTokens:(i+1)*d.MaxTokens])
		}
	}
	return nil
}

// DropCond replaces example i's condition by the null condition: the null class and, for a text
// model, the empty caption (all padding) or, for precomputed embeddings, the zero embedding
// (classifier-free guidance training, Ho & Salimans arXiv 2207.12598).
func DropCond(b *Batch, i, nullClass int) {
	w := max(b.CondWidth, 1)
	row := b.Cond[i*w : (i+1)*w]
	row[0] = int32(nullClass)
	clear(row[1:])
}

func (r *run) checkpoint() (string, error) {
	path, err := saveState(r.job.RunDir, r.store, r.hs, r.job.ConfigYAML, r.job.Trainer.KeepCheckpoints)
	if err != nil {
		return "", fmt.Errorf("checkpoint at step %d: %w", r.hs.Step, err)
	}
	return path, nil
}

// nonFinite builds the error for a NaN/Inf step; the graph left all state untouched.
func (r *run) nonFinite(out StepResult) error {
	last := "none yet"
	if steps, _ := checkpoints.List(r.job.RunDir); len(steps) > 0 {
		last = fmt.Sprintf("step %d in %s", steps[len(steps)-1], r.job.RunDir.CheckpointDir())
	}
	return fmt.Errorf("non-finite training step %d (loss=%g, grad_norm=%g, or an updated weight overflowed): stopped without updating the weights; last good checkpoint: %s. Lower trainer.lr or set trainer.grad_clip",
		r.hs.Step+1, out.Loss, out.GradNorm, last)
}
