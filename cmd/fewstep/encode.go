package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/autoenc"
	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// encodeData is `fewstep data encode -autoencoder RUN -data IN.parquet -out OUT.parquet`: the
// latent copy of an image dataset (posterior means of the run's newest EMA weights) with the
// latent scale and the autoencoder's identity in the file metadata.
func encodeData(args []string) error {
	fs := newFlagSet("data encode", "data encode -autoencoder RUN_DIR -data IN.parquet -out OUT.parquet [-batch 250]")
	run := fs.String("autoencoder", "", "autoencoder run directory (model.arch autoencoder)")
	in := fs.String("data", "", "input image dataset (Parquet)")
	out := fs.String("out", "", "output latent dataset (Parquet)")
	batch := fs.Int("batch", 250, "images per encoder call")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *run == "" || *in == "" || *out == "" {
		return usagef("data encode: -autoencoder, -data and -out are required")
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
	enc, err := autoenc.NewEncoder(backend, store, cfg.Autoencoder, *batch)
	if err != nil {
		return err
	}
	side, ch, f := cfg.Data.ImageSize, cfg.Data.Channels, cfg.Autoencoder.Factor()
	shape := []int32{int32(side / f), int32(side / f), int32(cfg.Autoencoder.LatentChannels)}
	ident, err := json.Marshal(autoenc.LatentSource{Run: *run, Step: step, CheckpointSHA256: hash, Autoencoder: cfg.Autoencoder,
		ImageSize: side, Channels: ch})
	if err != nil {
		return err
	}
	t0 := time.Now()
	sum, err := data.EncodeFile(*in, *out, side, ch, shape, func(imgs []float32, n int) ([]float32, error) {
		return enc(imgs, n, side, side, ch)
	}, map[string]string{data.MetaAutoencoder: string(ident)}, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Printf("encoded %d rows of %s into %s: latents %v, mean %.4f, std %.4f, scale %.4f (%s)\n", sum.Rows, *in, *out,
		sum.LatentShape, sum.Mean, sum.Std, sum.Scale, time.Since(t0).Round(time.Second))
	return nil
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

// refuseLatent is the error of commands that cannot decode latent samples yet (sample, eval,
// export, distillation) for a run trained on latent rows, or nil for an image run.
func refuseLatent(cfg *configs.Run, verb string) error {
	latent, path, _, _, err := data.LatentMetaOf(cfg.Data.Train)
	if err != nil || !latent {
		return nil // the data may be gone; the command reports what it needs
	}
	return usagef("%s: run %s was trained on latent rows (%s): %s does not decode latent samples yet (part 15; the training grids do)", verb, cfg.Run.Name, path, verb)
}
