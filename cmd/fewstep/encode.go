package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/autoenc"
	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// encodeData is `fewstep data encode -autoencoder RUN -data IN.parquet -out OUT.parquet`: the
// latent copy of an image dataset (posterior means of the run's newest EMA weights) with the
// latent scale and the autoencoder's identity in the file metadata.
func encodeData(args []string) error {
	fs := newFlagSet("data encode", "data encode -autoencoder RUN_DIR -data IN.parquet -out OUT.parquet [-batch 250] [-sample [-seed 0]] [-norm global|channel]")
	run := fs.String("autoencoder", "", "autoencoder run directory (model.arch autoencoder)")
	in := fs.String("data", "", "input image dataset (Parquet)")
	out := fs.String("out", "", "output latent dataset (Parquet)")
	batch := fs.Int("batch", 250, "images per encoder call")
	sample := fs.Bool("sample", false, "write a posterior sample z = μ + σ·ε (ε from -seed and the row index) instead of the posterior mean μ")
	seed := fs.Uint64("seed", 0, "seed of the posterior samples (-sample)")
	norm := fs.String("norm", "global", "latent normalization: global (one scale, 1/std over all values: LDM's scale_by_std) or channel (each channel shifted and scaled to mean 0, std 1, recorded in the metadata)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *run == "" || *in == "" || *out == "" {
		return usagef("data encode: -autoencoder, -data and -out are required")
	}
	if *norm != "global" && *norm != "channel" {
		return usagef("data encode: -norm %q: want global or channel", *norm)
	}
	rd := checkpoints.RunDir(*run)
	cfg, _, err := configs.Load(rd.ConfigPath(), nil, nil)
	if err != nil {
		return err
	}
	if cfg.Model.Arch != models.ArchAutoencoder {
		return usagef("data encode -autoencoder %s: model.arch is %q, not autoencoder", *run, cfg.Model.Arch)
	}
	step, path, err := newestCheckpoint(rd)
	if err != nil {
		return err
	}
	hash, err := autoenc.FileSHA256(path)
	if err != nil {
		return err
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	store := model.NewStore()
	if _, err := trainer.InitWeights(store, *run, true, nil); err != nil {
		return err
	}
	enc, err := autoenc.NewEncoder(backend, store, cfg.Autoencoder, *batch, *sample, *seed)
	if err != nil {
		return err
	}
	side, ch, f := cfg.Data.ImageSize, cfg.Data.Channels, cfg.Autoencoder.Factor()
	shape := []int32{int32(side / f), int32(side / f), int32(cfg.Autoencoder.LatentChannels)}
	meta := func(sum data.EncodeSummary) (map[string]string, error) {
		src := models.LatentSource{Run: *run, Step: step, CheckpointSHA256: hash, Autoencoder: cfg.Autoencoder,
			ImageSize: side, Channels: ch, Data: *in, Posterior: posterior(*sample, *seed)}
		if sum.ChannelNorm {
			src.Norm = &models.LatentNorm{Shift: sum.ChannelMean}
			for _, sd := range sum.ChannelStd {
				src.Norm.Scale = append(src.Norm.Scale, 1/sd)
			}
		}
		ident, err := json.Marshal(src)
		return map[string]string{data.MetaAutoencoder: string(ident)}, err
	}
	t0 := time.Now()
	sum, err := data.EncodeFile(*in, *out, side, ch, shape, func(imgs []float32, n int) ([]float32, error) {
		return enc(imgs, n, side, side, ch)
	}, *norm == "channel", meta, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Printf("encoded %d rows of %s into %s: latents %v, mean %.4f, std %.4f, scale %.4f (%s)\n", sum.Rows, *in, *out,
		sum.LatentShape, sum.Mean, sum.Std, sum.Scale, time.Since(t0).Round(time.Second))
	for c := range sum.ChannelMean {
		fmt.Printf("  channel %d of the encoder's latents: mean %+.4f, std %.4f\n", c, sum.ChannelMean[c], sum.ChannelStd[c])
	}
	if sum.ChannelNorm {
		fmt.Println("  written per-channel normalized (-norm channel): (z − mean)/std, recorded in the autoencoder metadata's channel_norm")
	}
	return nil
}

// posterior names what data encode wrote: "mean", or "sample (seed S)".
func posterior(sample bool, seed uint64) string {
	if sample {
		return fmt.Sprintf("sample (seed %d)", seed)
	}
	return "mean"
}

// newestCheckpoint returns the step and file of a run's newest checkpoint.
func newestCheckpoint(rd checkpoints.RunDir) (int, string, error) {
	steps, err := checkpoints.List(rd)
	if err != nil {
		return 0, "", err
	}
	if len(steps) == 0 {
		return 0, "", fmt.Errorf("%s: no checkpoints", rd)
	}
	s := steps[len(steps)-1]
	return int(s), rd.CheckpointPath(s), nil
}

// latentData is what a latent file's metadata says: its autoencoder, latent scale and the raw
// fewstep.autoencoder JSON.
type latentData struct {
	src   models.LatentSource
	scale float64
	meta  string
}

// readLatentData reads the latent metadata of a training set; ok is false for image data and for
// files that cannot be read (the data may be gone: the command reports what it needs).
func readLatentData(train string) (latentData, bool, error) {
	latent, path, scale, meta, err := data.LatentMetaOf(train)
	if err != nil || !latent {
		return latentData{}, false, nil
	}
	src, err := models.ParseLatentSource(path, meta)
	if err != nil {
		return latentData{}, false, err
	}
	return latentData{src: src, scale: scale, meta: meta}, true, nil
}

// attachDecoder sets job.Decoder when the run trained on latent rows (its data.train holds the
// latents of `fewstep data encode`): the autoencoder checkpoint the file names, checked by hash.
// Scoring such a run needs pixel data: data.classifier_train defaults to the encoded image file,
// and a latent data.test is refused. Image runs are left as they are.
func attachDecoder(job *trainer.Job, backend compute.Backend) error {
	ld, ok, err := readLatentData(job.Data.Train)
	if !ok {
		return err
	}
	src := ld.src
	if job.Data.ClassifierTrain == "" {
		job.Data.ClassifierTrain = src.Data
	}
	if job.Data.Test != "" {
		if lt, tp, _, _, err := data.LatentMetaOf(job.Data.Test); err == nil && lt {
			return fmt.Errorf("data.test %s holds latent rows: samples of a latent run are decoded and scored against pixel images; set data.test to the image test split", tp)
		}
	}
	dec, err := autoenc.LoadDecoder(backend, src, ld.scale)
	if err != nil {
		return err
	}
	job.Decoder = dec
	return nil
}

// inputShape is the side and channels of the denoiser's input for data dc: the latent's for
// latent rows, else data.image_size and data.channels.
func inputShape(dc data.Config) (side, channels int, err error) {
	ld, ok, err := readLatentData(dc.Train)
	if !ok {
		return dc.ImageSize, dc.Channels, err
	}
	side, _, channels = ld.src.LatentShape()
	return side, channels, nil
}

// latentFirstStage is the first stage an export of a run on latent rows carries (the decoder's
// weights, checked by hash, and the latent scale), nil for an image run.
func latentFirstStage(dc data.Config) (*export.Latent, error) {
	ld, ok, err := readLatentData(dc.Train)
	if !ok {
		return nil, err
	}
	w, err := autoenc.DecoderWeights(ld.src)
	if err != nil {
		return nil, err
	}
	return &export.Latent{Source: ld.src, Scale: ld.scale, Decoder: w}, nil
}

// useTinyDecoder replaces the full decoder of a latent job (attached by attachDecoder or read
// from a model file) with the tiny decoder of a tiny_decoder run (tinyDecoder); the job's latent
// scale is kept.
func useTinyDecoder(job *trainer.Job, backend compute.Backend, runDir string) error {
	full, ok := job.Decoder.(*sampling.Decoder)
	if !ok || full == nil {
		return usagef("-decoder %s: the model is not a latent model (it generates images directly)", runDir)
	}
	cfg, w, err := tinyDecoder(runDir, full.Source)
	if err != nil {
		return err
	}
	tiny, err := sampling.DecoderFromTensors(backend, full.Source, &cfg, full.Scale, w)
	if err != nil {
		return err
	}
	job.Decoder = tiny
	return nil
}

// tinyDecoder reads the config and newest EMA weights (keyed by path inside the decoder) of a
// tiny_decoder run (SDXS §3.2), which must have been distilled from the autoencoder of src (the
// same checkpoint hash; an error names both otherwise).
func tinyDecoder(runDir string, src models.LatentSource) (models.TinyDecoderConfig, map[string]*tensors.Tensor, error) {
	var none models.TinyDecoderConfig
	rd := checkpoints.RunDir(runDir)
	cfg, _, err := configs.Load(rd.ConfigPath(), nil, nil)
	if err != nil {
		return none, nil, err
	}
	if cfg.Model.Arch != models.ArchTinyDecoder {
		return none, nil, usagef("-decoder %s: model.arch is %q, not %s", runDir, cfg.Model.Arch, models.ArchTinyDecoder)
	}
	ld, ok, err := readLatentData(cfg.Data.Train)
	if !ok {
		return none, nil, fmt.Errorf("-decoder %s: its data.train %s: not latent rows (%v)", runDir, cfg.Data.Train, err)
	}
	own := ld.src
	if own.CheckpointSHA256 != src.CheckpointSHA256 {
		return none, nil, fmt.Errorf("-decoder %s: distilled from the autoencoder %s step %d (SHA-256 %s), but the model's latents are of %s step %d (SHA-256 %s)",
			runDir, own.Run, own.Step, own.CheckpointSHA256, src.Run, src.Step, src.CheckpointSHA256)
	}
	all, err := trainer.ReadInitWeights(runDir, true)
	if err != nil {
		return none, nil, err
	}
	w := map[string]*tensors.Tensor{}
	for p, t := range all {
		if rest, ok := strings.CutPrefix(p, autoenc.TinyScope+"/"); ok {
			w[rest] = t
		}
	}
	if len(w) == 0 {
		return none, nil, fmt.Errorf("-decoder %s: no %s/* weights in its newest checkpoint", runDir, autoenc.TinyScope)
	}
	return cfg.TinyDecoder, w, nil
}
