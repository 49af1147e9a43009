package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/distill"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

func cmdDistill(args []string) error {
	if len(args) > 0 && (args[0] == "generate" || args[0] == "pairs") {
		return distillGenerate(args[0], args[1:])
	}
	if len(args) > 0 && args[0] == "inspect" {
		return distillInspect(args[1:])
	}
	ra, err := parseRunFlags("distill", "distill -config NAME|FILE [-set section.key=value]... [--dry-run] [-stop-at N] | distill -resume RUN_DIR | distill generate …",
		"mnist-ladd", args)
	if ra == nil || err != nil {
		return err
	}
	job := ra.job
	job.Distilled = true
	if err := latentDecoder(&job); err != nil { // latent students: grids and evaluations decode
		return err
	}
	method, header, err := distillMethod(ra.cfg)
	if err != nil {
		return err
	}
	return runTraining(job, trainer.Options{Resume: ra.resume, StopAt: ra.stopAt, Method: method, Label: "distill"}, "fewstep distill: "+header)
}

// distillMethod builds the distill section's method for cfg and describes it.
func distillMethod(cfg *configs.Run) (trainer.MethodFactory, string, error) {
	teacher, err := loadTeacher(cfg.Distill.Teacher)
	if err != nil {
		return nil, "", err
	}
	switch cfg.Distill.Method {
	case "imagine_flash":
		fc := cfg.ImagineFlash
		return distill.NewImagineFlash(cfg.Distill, fc, cfg.LADD, teacher), fmt.Sprintf("imagine_flash (%s) of %s, student schedules %v, τ = shift(t) %s",
			fc.Mode, teacher.Dir, fc.Schedules(cfg.Distill, cfg.Diffusion.TMax), fc.Shift), nil
	case "sdxs":
		header, err := sdxsHeader(*cfg, teacher)
		return distill.NewSDXS(cfg.Distill, cfg.SDXS, teacher), header, err
	case "perflow":
		pc := cfg.PeRFlow
		return distill.NewPeRFlow(cfg.Distill, pc, teacher), fmt.Sprintf("perflow of %s: %d windows, %d guided (cfg %g) teacher DDIM steps each, eps-preserving, %g of the examples at the window start",
			teacher.Dir, pc.Windows, pc.TeacherSteps, pc.Guidance, pc.StartFraction), nil
	case "lcm":
		lc := cfg.LCM
		return distill.NewLCM(cfg.Distill, lc, teacher), fmt.Sprintf("lcm of %s: consistency pairs of a %d-step grid skipping %d, teacher guidance %g, %s distance",
			teacher.Dir, lc.Timesteps, lc.Skip, lc.Guidance, lc.Distance), nil
	}
	return distill.NewLADD(cfg.Distill, cfg.LADD, teacher), fmt.Sprintf("%s of %s into a %d-step student at t=%v", cfg.Distill.Method, teacher.Dir,
		cfg.Distill.StudentSteps, cfg.Distill.Times(cfg.Diffusion.TMax)), nil
}

// distillInspect prints the discriminator heads' accuracy and logit gap over a run's training,
// overall, per t̂ bucket and per head (from RUN/metrics.jsonl).
func distillInspect(args []string) error {
	fs := newFlagSet("distill inspect", "distill inspect RUN_DIR [-windows 10]")
	windows := fs.Int("windows", 10, "spans of training to average over")
	help, runs, err := parseWithArgs(fs, args)
	if help || err != nil {
		return err
	}
	if len(runs) != 1 || *windows < 1 {
		return usagef("distill inspect: want one RUN_DIR and -windows >= 1")
	}
	path := checkpoints.RunDir(runs[0]).MetricsPath()
	recs, err := trainer.ReadMetrics(path)
	if err != nil {
		return fmt.Errorf("distill inspect: %w", err)
	}
	ws, err := distill.HeadReport(recs, *windows)
	if err != nil {
		return fmt.Errorf("distill inspect: %s: %w", path, err)
	}
	fmt.Printf("discriminator heads of %s (accuracy: fraction of images called right; gap: mean logit real − fake)\n\n", runs[0])
	return distill.WriteHeadReport(os.Stdout, ws)
}

// loadTeacher reads a teacher run's resolved config, or an exported model file's configs.
func loadTeacher(dir string) (distill.Teacher, error) {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		m, err := export.ReadModel(dir)
		if err != nil {
			return distill.Teacher{}, fmt.Errorf("distill.teacher: %w", err)
		}
		return distill.Teacher{Dir: checkpoints.RunDir(dir), File: dir, Model: m.Model, Diffusion: m.Diffusion}, nil
	}
	rd := checkpoints.RunDir(dir)
	if steps, err := checkpoints.List(rd); err != nil || len(steps) == 0 {
		return distill.Teacher{}, fmt.Errorf("distill.teacher: %s has no checkpoint (train it first: fewstep train -config mnist-teacher)", dir)
	}
	tc, _, err := configs.Load(rd.ConfigPath(), nil, nil)
	if err != nil {
		return distill.Teacher{}, fmt.Errorf("distill.teacher: %w", err)
	}
	return distill.Teacher{Dir: rd, Model: tc.ModelWithLoRA(), Diffusion: tc.Diffusion}, nil
}

// distillGenerate writes teacher samples as a Parquet dataset: `generate`, synthetic data (LADD
// §3.3); `pairs`, noise–image pairs of a deterministic sampler with the initial noise in the
// noise column (SDXS §3.3; the teacher may be a distilled few-step run, whose paths are straighter).
func distillGenerate(verb string, args []string) error {
	usage := "distill " + verb + " -teacher RUN_DIR -n N [-cfg 2] [-steps 16] [-sampler ddim] [-seed 1000000] [-batch 250] -out " +
		map[string]string{"generate": "synth.parquet", "pairs": "pairs.parquet"}[verb]
	fs := newFlagSet("distill "+verb, usage)
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
		return usagef("distill %s: -teacher RUN_DIR, -out FILE and -n >= 1 are required", verb)
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
		return usagef("distill %s: %v", verb, err)
	}
	pairs := verb == "pairs"
	if pairs && (sc.Sampler == "sde" || sc.Sampler == "renoise" || (sc.Sampler == "ddim" && sc.Eta != 0)) {
		return usagef("distill pairs: -sampler %s (eta %g) is stochastic; noise–image pairs need a deterministic ODE sampler (ddim with eta 0, euler, heun, dpmpp-2m)", sc.Sampler, sc.Eta)
	}
	smp, err := runSampler(rd, cfg.Job(resolved), sc)
	if err != nil {
		return err
	}
	// Captions: each class's caption templates in turn (the class name for datasets without
	// templates); a text teacher is prompted with them. The vocabulary is the training data's, so
	// real and synthetic files mix under data.condition caption.
	classNames, vocab := cfg.Model.Text.ClassNames, cfg.Model.Text.Vocab
	if v, names, err := data.ReadTextMeta(cfg.Data.Train); err == nil {
		if len(classNames) == 0 { // the YAML's empty list is no list
			classNames = names
		}
		if len(vocab) == 0 {
			vocab = v
		}
	} else if st, err := data.Open(cfg.Data, 1, 0); err == nil && len(classNames) == 0 {
		classNames = st.Info().ClassNames
		st.Close()
	}
	templates, _ := data.CaptionTemplatesOf(classNames)
	caption := func(class int32, i int) string {
		if templates != nil {
			return data.TemplateCaption(templates, int(class), i/max(cfg.Model.NumClasses, 1))
		}
		if int(class) < len(classNames) {
			return classNames[class]
		}
		return ""
	}
	if cfg.Model.Text.On() && len(classNames) != cfg.Model.NumClasses {
		return fmt.Errorf("distill %s: the text teacher %s has %d class names for %d classes (model.text.class_names): cannot choose prompts", verb, rd, len(classNames), cfg.Model.NumClasses)
	}
	lf, err := synthLayout(cfg.Data)
	if err != nil {
		return err
	}
	cols, side, ch, k := lf.cols, lf.side, lf.channels, cfg.Model.NumClasses
	latent, latentScale := lf.scale > 0, lf.scale
	if pairs {
		cols = append(cols, data.ColNoise)
	}
	var prompts *data.PromptEmbeddings // a teacher on precomputed embeddings: rows keep theirs
	if cfg.Model.Text.Column() {
		if prompts, err = sampling.PromptEmbeddings(cfg.Model); err != nil {
			return err
		}
		cols = append(cols, data.ColTextEmbedding)
	}
	w, err := data.NewWriter(*out, cols,
		data.WriterOptions{ClassNames: classNames, Vocab: vocab, Progress: os.Stdout, Total: *n, Meta: lf.meta})
	if err != nil {
		return err
	}
	t0 := time.Now()
	for start := 0; start < *n; start += *batch {
		end := min(start+*batch, *n)
		seeds := make([]uint64, end-start)
		classes := make([]int32, end-start)
		for i := range seeds {
			seeds[i] = uint64(*seed + start + i)
			classes[i] = int32((start + i) % k)
		}
		captions := make([]string, len(seeds))
		for i := range seeds {
			captions[i] = caption(classes[i], start+i)
		}
		cond := classes
		if cfg.Model.Text.On() {
			if cond, _, err = sampling.PromptCond(cfg.Model, captions, classes); err != nil {
				w.Abort()
				return err
			}
		}
		imgs, err := smp.Sample(seeds, cond, side, side, ch)
		if err != nil {
			w.Abort()
			return err
		}
		per := side * side * ch
		for i := range seeds {
			row := data.Row{Label: classes[i], HasLabel: true,
				ID: fmt.Sprintf("%s-%s-%d", map[bool]string{false: "synth", true: "pair"}[pairs], filepath.Base(string(rd)), seeds[i])}
			if latent {
				row.LatentShape = []int32{int32(side), int32(side), int32(ch)}
				for _, v := range imgs[i*per : (i+1)*per] {
					row.Latent = append(row.Latent, float32(float64(v)/latentScale))
				}
			} else {
				if row.Image, err = sampling.ImagePNG(imgs[i*per:(i+1)*per], side, side, ch); err != nil {
					w.Abort()
					return err
				}
				row.Width, row.Height = int32(side), int32(side)
			}
			if pairs {
				row.Noise = sampling.NoiseForSeed(seeds[i], per)
			}
			row.Caption = captions[i]
			if prompts != nil {
				if row.TextEmbedding, err = prompts.Lookup(captions[i]); err != nil {
					w.Abort()
					return err
				}
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
	fmt.Printf("wrote %d teacher %s (%d %s steps, cfg %g) to %s in %s\n", rows, map[bool]string{false: "samples", true: "noise–image pairs"}[pairs], sc.Steps, sc.Sampler, sc.CFG,
		strings.Join(paths, ", "), time.Since(t0).Round(time.Second))
	return nil
}

// synthFile is the layout of a teacher's synthetic data: columns, the rows' side and channels, and
// for a latent teacher (trained on `fewstep data encode` rows) the latent scale and file metadata.
type synthFile struct {
	cols           []string
	side, channels int
	scale          float64 // > 0: latent rows
	meta           map[string]string
}

// synthLayout is the synthetic data layout of a teacher trained on dc. A latent teacher writes
// latent rows — its samples divided by the latent scale, with the scale and autoencoder of its
// data — so the file mixes with the encoded data and trains latent students and tiny decoders
// (SDXS §3.2); pairs keep the noise as drawn, in the scaled space the denoiser samples in.
func synthLayout(dc data.Config) (synthFile, error) {
	f := synthFile{cols: []string{data.ColImage, data.ColLabel, data.ColCaption, data.ColID, data.ColWidth, data.ColHeight},
		side: dc.ImageSize, channels: dc.Channels}
	ld, ok, err := readLatentData(dc.Train)
	if !ok {
		return f, err
	}
	f.cols, f.scale = []string{data.ColLatent, data.ColLatentShape, data.ColLabel, data.ColCaption, data.ColID}, ld.scale
	f.side, _, f.channels = ld.src.LatentShape()
	f.meta = map[string]string{data.MetaLatentScale: strconv.FormatFloat(ld.scale, 'g', -1, 64), data.MetaAutoencoder: ld.meta}
	return f, nil
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
	if err := attachDecoder(&job, backend); err != nil { // a latent teacher samples unclipped latents
		return nil, err
	}
	job.Sample = sc
	return trainer.GridSampler(backend, store, job)
}

// sdxsHeader describes an SDXS run: the pruned blocks and the parameters and forward FLOPs per
// image of teacher and student.
func sdxsHeader(cfg configs.Run, teacher distill.Teacher) (string, error) {
	backend, err := engine.New()
	if err != nil {
		return "", err
	}
	side, ch, err := inputShape(cfg.Data)
	if err != nil {
		return "", err
	}
	tp, tf, err := models.CountForward(backend, teacher.Model, teacher.Diffusion, side, ch)
	if err != nil {
		return "", err
	}
	sp, sf, err := models.CountForward(backend, cfg.Model, cfg.Diffusion, side, ch)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("sdxs of %s, dropping %v: teacher %d params, %.1f MFLOP/img; student %d params (%.0f%%), %.1f MFLOP/img (%.0f%%)",
		teacher.Dir, cfg.Model.DropBlocks, tp, float64(tf)/1e6, sp, 100*float64(sp)/float64(tp), float64(sf)/1e6, 100*float64(sf)/float64(tf)), nil
}
