package autoenc

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// job is a tiny f = 4 autoencoder run on the first MNIST test images (32×32).
func job(t *testing.T, train, dir string, steps int) (trainer.Job, models.AutoencoderConfig) {
	t.Helper()
	dc := data.DefaultConfig()
	dc.Train = train
	mc := models.DefaultConfig()
	mc.Arch = models.ArchAutoencoder
	tc := trainer.DefaultConfig()
	tc.Steps, tc.BatchSize, tc.LR, tc.WarmupSteps, tc.LogEvery, tc.CheckpointEvery, tc.SampleEvery = steps, 8, 2e-3, 2, 1, 1000, steps
	ac := models.AutoencoderConfig{Channels: 8, ChannelMult: []int{1, 2, 2}, NumResBlocks: 1, LatentChannels: 4, Groups: 4,
		L1Weight: 1, SSIMWeight: 0.2, KLWeight: 1e-6, DiscStart: 6, DiscWeight: 0.5, DiscChannels: 8, DiscLayers: 2, DiscLR: 1e-3}
	return trainer.Job{RunDir: checkpoints.RunDir(dir), Seed: 5, Data: dc, Model: mc, Diffusion: models.DefaultDiffusionConfig(),
		Trainer: tc, ConfigYAML: []byte("# test\n")}, ac
}

func lossTerms(t *testing.T, dir checkpoints.RunDir) ([]float64, []map[string]float64) {
	t.Helper()
	recs, err := trainer.ReadMetrics(dir.MetricsPath())
	if err != nil {
		t.Fatal(err)
	}
	var l []float64
	var terms []map[string]float64
	for _, r := range recs {
		if r.Eval == nil {
			l, terms = append(l, r.Loss), append(terms, r.Terms)
		}
	}
	return l, terms
}

// TestAutoencoderTrains: 16 steps of a tiny autoencoder on MNIST lower the L1 reconstruction error
// and raise PSNR; the discriminator switches on at disc_start (its terms appear from there); the
// run resumed at step 8 equals the straight run exactly; the grid (inputs over reconstructions) is
// written; and the autoencoder without its method is refused.
func TestAutoencoderTrains(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	src, err := data.FindGoMNIST()
	if err != nil {
		t.Fatal(err)
	}
	train := filepath.Join(t.TempDir(), "mnist-test.parquet")
	if _, err := data.ImportMNIST(src, "test", train); err != nil {
		t.Fatal(err)
	}
	run := func(j trainer.Job, ac models.AutoencoderConfig, opt trainer.Options) *trainer.Result {
		opt.Method, opt.Out = New(ac), io.Discard
		res, err := trainer.Train(context.Background(), backend, j, opt)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	straight, ac := job(t, train, t.TempDir(), 16)
	res := run(straight, ac, trainer.Options{})
	if _, err := os.Stat(res.Grid); err != nil {
		t.Fatalf("grid: %v", err)
	}
	split, _ := job(t, train, t.TempDir(), 16)
	run(split, ac, trainer.Options{StopAt: 8})
	run(split, ac, trainer.Options{Resume: true})
	la, terms := lossTerms(t, straight.RunDir)
	lb, _ := lossTerms(t, split.RunDir)
	if len(la) != 16 || !slices.Equal(la, lb) {
		t.Fatalf("losses differ after resume:\n%v\n%v", la, lb)
	}
	if !(terms[15]["l1"] < terms[0]["l1"]) || !(terms[15]["psnr"] > terms[0]["psnr"]) {
		t.Fatalf("l1 %g → %g, psnr %g → %g: not learning", terms[0]["l1"], terms[15]["l1"], terms[0]["psnr"], terms[15]["psnr"])
	}
	if _, ok := terms[5]["d_loss"]; ok {
		t.Fatal("discriminator ran before disc_start")
	}
	if _, ok := terms[6]["d_loss"]; !ok {
		t.Fatal("no discriminator terms at disc_start")
	}
	_, ta, _, err := checkpoints.LoadLatest(straight.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	_, tb, _, err := checkpoints.LoadLatest(split.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range ta {
		if !slices.Equal(tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](tb[name])) {
			t.Errorf("tensor %s differs after resume", name)
		}
	}
	if _, ok := ta["ema/decoder/conv_out/kernel"]; !ok {
		t.Errorf("no EMA decoder in the checkpoint")
	}
	bad, _ := job(t, train, t.TempDir(), 2)
	if _, err := trainer.Train(context.Background(), backend, bad, trainer.Options{Out: io.Discard}); err == nil {
		t.Fatal("an autoencoder run without its method was accepted")
	}
}
