package main

import (
	"bytes"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/generate"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// TestExportSampleEvalModel: train the smoke config briefly, export it, and check that `sample
// -model` draws the same grid as `sample -run`, byte for byte, and that `eval -model` scores it.
func TestExportSampleEvalModel(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FEWSTEP_CACHE_DIR", dir)
	full := importMNISTTest(t, dir)
	pq := smallSplit(t, full, filepath.Join(dir, "mnist-500.parquet"), 500) // keeps eval's classifier quick
	sets := []string{"-set", "data.train=" + pq, "-set", "run.out_dir=" + dir, "-set", "trainer.steps=6", "-set", "trainer.checkpoint_every=3"}
	if code := run(append([]string{"train", "-config", "smoke"}, sets...)); code != 0 {
		t.Fatalf("train: exit code %d", code)
	}
	runDir := filepath.Join(dir, "smoke")
	file := filepath.Join(dir, "smoke.safetensors")
	for _, args := range [][]string{
		{"export", "-run", runDir},                                      // no -out
		{"export", "-run", runDir, "-out", file, "-checkpoint", "best"}, // no best.json
		{"sample", "-run", runDir, "-model", file},                      // both
	} {
		if code := run(args); code != 2 {
			t.Errorf("%v: exit code %d, want 2", args, code)
		}
	}
	if code := run([]string{"export", "-run", runDir, "-out", file}); code != 0 {
		t.Fatalf("export: exit code %d", code)
	}
	m, err := export.ReadModel(file)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source.Step != 6 || m.Source.Weights != "ema" || len(m.ClassNames) != 10 || m.ClassNames[3] != "three" || m.Sample.Steps != 4 {
		t.Errorf("exported source %+v, class names %v, sample %+v", m.Source, m.ClassNames, m.Sample)
	}
	if code := run([]string{"export", "-run", runDir, "-out", filepath.Join(dir, "raw3.safetensors"), "-raw", "-checkpoint", "3"}); code != 0 {
		t.Fatalf("export -raw -checkpoint 3: exit code %d", code)
	}
	if raw, err := export.ReadModel(filepath.Join(dir, "raw3.safetensors")); err != nil || raw.Source.Step != 3 || raw.Source.Weights != "model" {
		t.Fatalf("raw export: %+v, %v", raw, err)
	}

	sameGrid(t, dir, runDir, file, "-class", "3", "-n", "4", "-steps", "2", "-seed", "5")
	if code := run([]string{"sample", "-model", filepath.Join(dir, "missing.safetensors")}); code != 1 {
		t.Errorf("sample -model missing file: exit code %d, want 1", code)
	}

	if code := run([]string{"eval", "train-classifier", "-data", pq, "-test", pq, "-epochs", "1"}); code != 0 {
		t.Fatalf("eval train-classifier: exit code %d", code)
	}
	tmp := filepath.Join(dir, "tmp") // eval's temporary run directories go here, and must go away
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	if code := run([]string{"eval", "-model", file + "@1", "-data-test", pq, "-n", "20", "-batch", "10", "-steps", "1"}); code != 0 {
		t.Fatalf("eval -model: exit code %d", code)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("eval left temporary files: %v", left)
	}
	report, err := os.ReadFile(filepath.Join(dir, "smoke-eval", "eval.csv"))
	if err != nil || !strings.Contains(string(report), "smoke") {
		t.Fatalf("eval report: %q, %v", report, err)
	}
}

// sameGrid fails unless `sample -run runDir` and `sample -model file` with args write the same PNG
// bytes (into dir).
func sameGrid(t *testing.T, dir, runDir, file string, args ...string) {
	t.Helper()
	fromRun, fromFile := filepath.Join(dir, "run.png"), filepath.Join(dir, "file.png")
	if code := run(append([]string{"sample", "-run", runDir, "-out", fromRun}, args...)); code != 0 {
		t.Fatalf("sample -run: exit code %d", code)
	}
	if code := run(append([]string{"sample", "-model", file, "-out", fromFile}, args...)); code != 0 {
		t.Fatalf("sample -model: exit code %d", code)
	}
	a, errA := os.ReadFile(fromRun)
	b, errB := os.ReadFile(fromFile)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("grids differ between -run and -model (%v, %v)", errA, errB)
	}
}

// smokeModel is the smoke preset's model section as YAML (configs written by tests whose student
// must match a smoke teacher).
const smokeModel = `model:
  patch_size: 2
  base_channels: 8
  channel_mult: [1, 2]
  attention_resolutions: [8]
  attention_heads: 2
  groups: 4
  time_features: 16
  embed_dim: 32
`

// importMNISTTest imports the MNIST test split to dir/mnist-test.parquet and returns its path.
func importMNISTTest(t *testing.T, dir string) string {
	t.Helper()
	full := filepath.Join(dir, "mnist-test.parquet")
	if code := run([]string{"data", "import", "mnist", "-split", "test", "-out", full}); code != 0 {
		t.Fatalf("data import: exit code %d", code)
	}
	return full
}

// maxDiff is the largest |got − want| and the largest |want| (relative checks: d <= tol·s).
func maxDiff(got, want []float32) (d, s float64) {
	for i := range want {
		d, s = math.Max(d, math.Abs(float64(got[i]-want[i]))), math.Max(s, math.Abs(float64(want[i])))
	}
	return d, s
}

// smallSplit writes the first n rows of a dataset (as 32×32 PNGs, with labels, class names, the
// class names as captions and their vocabulary) to out and returns out.
func smallSplit(t *testing.T, src, out string, n int) string {
	t.Helper()
	dc := data.DefaultConfig()
	dc.Train = src
	st, err := data.Open(dc, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	info := st.Info()
	b := data.NewBatch(info, dc, n)
	if err := st.Next(b); err != nil {
		t.Fatal(err)
	}
	w, err := data.NewWriter(out, []string{data.ColImage, data.ColLabel, data.ColCaption, data.ColID, data.ColWidth, data.ColHeight},
		data.WriterOptions{ClassNames: info.ClassNames, Vocab: data.BuildVocab(info.ClassNames, 0)})
	if err != nil {
		t.Fatal(err)
	}
	per := b.H * b.W * b.C
	for i := range n {
		img, err := sampling.ImagePNG(b.X[i*per:(i+1)*per], b.H, b.W, b.C)
		if err != nil {
			t.Fatal(err)
		}
		row := data.Row{Image: img, Label: b.Labels[i], HasLabel: true, Width: int32(b.W), Height: int32(b.H),
			ID: fmt.Sprintf("small-%d", i), Caption: info.ClassNames[b.Labels[i]]}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTextModelPromptsExportSample: a caption-conditioned smoke run (model.text on) samples from
// -prompt and -prompts; the exported file carries the text encoder and the vocabulary, so `sample
// -model` draws the same prompt grid as `sample -run`, byte for byte; -out DIR/ writes
// labels.csv with the prompt and the class it names (none for "a blue seven").
func TestTextModelPromptsExportSample(t *testing.T) {
	dir := t.TempDir()
	full := importMNISTTest(t, dir)
	sets := []string{"-set", "data.train=" + full, "-set", "run.out_dir=" + dir, "-set", "run.name=text", "-set", "trainer.steps=4",
		"-set", "data.condition=caption", "-set", "data.max_tokens=6", "-set", "model.text.source=learned", "-set", "model.text.max_tokens=6",
		"-set", "model.text.layers=1", "-set", "model.text.width=16", "-set", "model.text.heads=2"}
	if code := run(append([]string{"train", "-config", "smoke"}, sets...)); code != 0 {
		t.Fatalf("train: exit code %d", code)
	}
	runDir := filepath.Join(dir, "text")
	file := filepath.Join(dir, "text.safetensors")
	if code := run([]string{"export", "-run", runDir, "-out", file}); code != 0 {
		t.Fatalf("export: exit code %d", code)
	}
	m, err := export.ReadModel(file)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Model.Text.On() || len(m.Model.Text.Vocab) < 20 || m.Model.Text.Vocab[0] != "<pad>" {
		t.Fatalf("exported text config %+v", m.Model.Text)
	}
	prompts := filepath.Join(dir, "prompts.txt")
	if err := os.WriteFile(prompts, []byte("# digits\nthe digit 7\n\na handwritten three\na blue seven\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-prompt", "seven", "-prompts", prompts, "-n", "2", "-steps", "2"}
	sameGrid(t, dir, runDir, file, args...)
	out := filepath.Join(dir, "imgs") + "/"
	if code := run(append([]string{"sample", "-run", runDir, "-out", out}, args...)); code != 0 {
		t.Fatalf("sample -out DIR/: exit code %d", code)
	}
	csv, err := os.ReadFile(filepath.Join(out, "labels.csv"))
	want := "file,prompt,seed,label\n000000.png,seven,0,7\n000001.png,seven,1,7\n000002.png,the digit 7,2,7\n000003.png,the digit 7,3,7\n" +
		"000004.png,a handwritten three,4,3\n000005.png,a handwritten three,5,3\n000006.png,a blue seven,6,\n000007.png,a blue seven,7,\n"
	if err != nil || string(csv) != want {
		t.Fatalf("labels.csv = %q (%v), want %q", csv, err, want)
	}
	// Synthetic data from the text teacher keeps its prompts: the caption templates in turn, with
	// the teacher's vocabulary (so real and synthetic files mix).
	synth := filepath.Join(dir, "synth.parquet")
	if code := run([]string{"distill", "generate", "-teacher", runDir, "-n", "12", "-steps", "2", "-batch", "6", "-out", synth}); code != 0 {
		t.Fatalf("distill generate: exit code %d", code)
	}
	vocab, names, err := data.ReadTextMeta(synth)
	if err != nil || !slices.Equal(vocab, m.Model.Text.Vocab) || len(names) != 10 {
		t.Fatalf("synthetic file vocabulary %v, class names %v (%v)", vocab, names, err)
	}
	dc := data.DefaultConfig()
	dc.Train, dc.Condition = synth, data.ConditionCaption
	st, err := data.Open(dc, 12, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Info().Vocab == nil {
		t.Fatal("synthetic file has no vocabulary")
	}
	// The empty prompt is the null condition: unconditional samples.
	if code := run([]string{"sample", "-run", runDir, "-out", filepath.Join(dir, "empty.png"), "-prompt", "", "-n", "2", "-steps", "2"}); code != 0 {
		t.Errorf("sample -prompt '': exit code %d", code)
	}
	if code := run([]string{"sample", "-run", runDir, "-prompts", filepath.Join(dir, "missing.txt")}); code != 2 {
		t.Errorf("sample -prompts missing file: exit code %d, want 2", code)
	}
}

// TestDiTExportSample: a transformer smoke run (model.arch dit, set from the command line) trains,
// exports with the transformer's tensor names, and `sample -model` draws the same grid as `sample
// -run`, byte for byte.
func TestDiTExportSample(t *testing.T) {
	dir := t.TempDir()
	full := importMNISTTest(t, dir)
	sets := []string{"-set", "data.train=" + full, "-set", "run.out_dir=" + dir, "-set", "run.name=dit", "-set", "trainer.steps=4",
		"-set", "model.arch=dit", "-set", "model.patch_size=4", "-set", "model.dit.hidden=16", "-set", "model.dit.depth=2",
		"-set", "model.dit.heads=2", "-set", "model.dit.mlp_ratio=2"}
	if code := run(append([]string{"train", "-config", "smoke"}, sets...)); code != 0 {
		t.Fatalf("train: exit code %d", code)
	}
	runDir := filepath.Join(dir, "dit")
	file := filepath.Join(dir, "dit.safetensors")
	if code := run([]string{"export", "-run", runDir, "-out", file}); code != 0 {
		t.Fatalf("export: exit code %d", code)
	}
	m, err := export.ReadModel(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"patch/weight", "block0/ada/weight", "block1/attn/qkv/weight", "block1/mlp2/bias", "final/linear/weight", "class/table"} {
		if _, ok := m.Tensors[name]; !ok {
			t.Errorf("exported DiT lacks tensor %s", name)
		}
	}
	sameGrid(t, dir, runDir, file, "-class", "3", "-n", "4", "-steps", "2", "-seed", "5")
}

// TestAutoencoderTrainEval: `train -config fashion-autoencoder` (here on 500 MNIST rows, 4 steps,
// the discriminator on from step 2) trains an autoencoder run, and `eval -autoencoder` scores its
// reconstructions; a denoiser run is refused by `eval -autoencoder` with a usage error.
func TestAutoencoderTrainEval(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FEWSTEP_CACHE_DIR", dir)
	full := importMNISTTest(t, dir)
	pq := smallSplit(t, full, filepath.Join(dir, "mnist-500.parquet"), 500)
	sets := []string{"-set", "data.train=" + pq, "-set", "data.test=" + pq, "-set", "run.out_dir=" + dir, "-set", "trainer.steps=4",
		"-set", "autoencoder.disc_start=2", "-set", "autoencoder.channels=8", "-set", "autoencoder.groups=4", "-set", "trainer.sample_every=4"}
	if code := run(append([]string{"train", "-config", "fashion-autoencoder"}, sets...)); code != 0 {
		t.Fatalf("train: exit code %d", code)
	}
	runDir := filepath.Join(dir, "fashion-autoencoder")
	if _, err := os.Stat(filepath.Join(runDir, "samples", "step-000000004.png")); err != nil {
		t.Fatalf("reconstruction grid: %v", err)
	}
	if code := run([]string{"eval", "train-classifier", "-data", pq, "-test", pq, "-epochs", "1"}); code != 0 {
		t.Fatalf("eval train-classifier: exit code %d", code)
	}
	if code := run([]string{"eval", "-autoencoder", runDir, "-n", "40"}); code != 0 {
		t.Fatalf("eval -autoencoder: exit code %d", code)
	}
	var lat [][]byte // data encode twice: the same bytes (deterministic), the latent shape of f = 4
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("lat%d.parquet", i))
		if code := run([]string{"data", "encode", "-autoencoder", runDir, "-data", pq, "-out", out}); code != 0 {
			t.Fatalf("data encode: exit code %d", code)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, b)
	}
	if !bytes.Equal(lat[0], lat[1]) {
		t.Fatal("data encode is not deterministic")
	}
	for i := range 2 { // posterior samples: deterministic for a seed, not the means
		out := filepath.Join(dir, fmt.Sprintf("lat-sample%d.parquet", i))
		if code := run([]string{"data", "encode", "-autoencoder", runDir, "-data", pq, "-out", out, "-sample", "-seed", "3"}); code != 0 {
			t.Fatalf("data encode -sample: exit code %d", code)
		}
		lat = append(lat, readFile(t, out))
	}
	if !bytes.Equal(lat[2], lat[3]) {
		t.Fatal("data encode -sample is not deterministic")
	}
	loaderBatch := func(file string) []float32 { // the first 4 latents, as the loader gives them
		dc := data.DefaultConfig()
		dc.Train = file
		st, err := data.Open(dc, 4, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		b := data.NewBatch(st.Info(), dc, 4)
		if err := st.Next(b); err != nil {
			t.Fatal(err)
		}
		return b.X
	}
	first := func(file string) []float32 {
		x := loaderBatch(file)
		scale, _, err := data.ReadLatentMeta(file)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x { // unscaled, as written
			x[i] = float32(math.Round(float64(x[i])/scale*1e4) / 1e4)
		}
		return x
	}
	if means, samples := first(filepath.Join(dir, "lat0.parquet")), first(filepath.Join(dir, "lat-sample0.parquet")); slices.Equal(means, samples) {
		t.Fatal("data encode -sample wrote the posterior means")
	}
	if scale, ae, err := data.ReadLatentMeta(filepath.Join(dir, "lat0.parquet")); err != nil || !(scale > 0) || !strings.Contains(ae, "checkpoint_sha256") {
		t.Fatalf("latent metadata: scale %g, autoencoder %q, %v", scale, ae, err)
	}
	// -norm channel: every channel written at mean 0, std 1, the shift and scale in the metadata;
	// decoding those latents gives the images of the globally scaled ones (the same rows, in the
	// same loader order), and a denoiser trained on them exports and samples as its run does.
	chanFile := filepath.Join(dir, "lat-chan.parquet")
	if code := run([]string{"data", "encode", "-autoencoder", runDir, "-data", pq, "-out", chanFile, "-norm", "channel"}); code != 0 {
		t.Fatalf("data encode -norm channel: exit code %d", code)
	}
	if _, ae, err := data.ReadLatentMeta(chanFile); err != nil || !strings.Contains(ae, `"channel_norm":{"shift":[`) {
		t.Fatalf("channel-normalized latent metadata: %q, %v", ae, err)
	}
	decodeFirst := func(file string) []float32 {
		job := trainer.Job{Data: data.DefaultConfig()}
		job.Data.Train = file
		backend, err := engine.New()
		if err != nil {
			t.Fatal(err)
		}
		if err := attachDecoder(&job, backend); err != nil || job.Decoder == nil {
			t.Fatalf("decoder of %s: %v", file, err)
		}
		imgs, err := job.Decoder.Decode(loaderBatch(file), 4)
		if err != nil {
			t.Fatal(err)
		}
		return imgs
	}
	if d, sc := maxDiff(decodeFirst(chanFile), decodeFirst(filepath.Join(dir, "lat0.parquet"))); d > 1e-4*sc || sc == 0 {
		t.Fatalf("decoded channel-normalized latents differ from the globally scaled ones by %g (scale %g)", d, sc)
	}
	chanSets := []string{"-set", "data.train=" + chanFile, "-set", "data.hflip=false", "-set", "run.out_dir=" + dir,
		"-set", "run.name=latent-chan", "-set", "trainer.steps=2", "-set", "trainer.sample_every=0"}
	if code := run(append([]string{"train", "-config", "smoke"}, chanSets...)); code != 0 {
		t.Fatalf("train on channel-normalized latents: exit code %d", code)
	}
	chanModel := filepath.Join(dir, "latent-chan.safetensors")
	if code := run([]string{"export", "-run", filepath.Join(dir, "latent-chan"), "-out", chanModel}); code != 0 {
		t.Fatalf("export of a channel-normalized latent run: exit code %d", code)
	}
	sameGrid(t, dir, filepath.Join(dir, "latent-chan"), chanModel, "-class", "2", "-n", "4", "-steps", "2", "-seed", "7")
	// A denoiser trains on the latent rows (8×8×4); its grid is decoded to 32×32 images.
	latSets := []string{"-set", "data.train=" + filepath.Join(dir, "lat0.parquet"), "-set", "data.hflip=false", "-set", "run.out_dir=" + dir,
		"-set", "run.name=latent", "-set", "trainer.steps=3", "-set", "trainer.sample_every=3"}
	if code := run(append([]string{"train", "-config", "smoke"}, latSets...)); code != 0 {
		t.Fatalf("train on latents: exit code %d", code)
	}
	grid := filepath.Join(dir, "latent", "samples", "step-000000003.png")
	if img, err := os.ReadFile(grid); err != nil || len(img) == 0 {
		t.Fatalf("decoded grid: %v", err)
	}
	// A caption-conditioned denoiser trains on the same latent rows (their captions and
	// vocabulary travel with the latents) and samples decoded images from prompts.
	textSets := append(slices.Clone(latSets[:len(latSets)-6]), "-set", "run.name=latent-text", "-set", "trainer.steps=2", "-set", "trainer.sample_every=0",
		"-set", "data.condition=caption", "-set", "data.max_tokens=8", "-set", "model.text.source=learned", "-set", "model.text.max_tokens=8",
		"-set", "model.text.layers=1", "-set", "model.text.width=16", "-set", "model.text.heads=2", "-set", "model.text.cross_attention_resolutions=[4]")
	if code := run(append([]string{"train", "-config", "smoke"}, textSets...)); code != 0 {
		t.Fatalf("caption-conditioned training on latents: exit code %d", code)
	}
	if code := run([]string{"sample", "-run", filepath.Join(dir, "latent-text"), "-prompt", "seven", "-n", "2", "-steps", "2", "-out", filepath.Join(dir, "text.png")}); code != 0 {
		t.Fatalf("sample a caption-conditioned latent run: exit code %d", code)
	}
	// sample decodes: a grid of 32×32 images; the exported file (denoiser + decoder) samples the
	// same bytes; generate decodes too; eval scores decoded images against the pixel test split.
	latDir := filepath.Join(dir, "latent")
	one := filepath.Join(dir, "one.png")
	if code := run([]string{"sample", "-run", latDir, "-class", "3", "-n", "1", "-steps", "2", "-out", one}); code != 0 {
		t.Fatalf("sample -run on a latent run: exit code %d", code)
	}
	f, err := os.Open(one)
	if err != nil {
		t.Fatal(err)
	}
	pngCfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil || pngCfg.Width != 36 || pngCfg.Height != 36 { // 32 + the 2-pixel border
		t.Fatalf("latent sample: %dx%d PNG (%v), want one decoded 32x32 image in its border", pngCfg.Width, pngCfg.Height, err)
	}
	file := filepath.Join(dir, "latent.safetensors")
	if code := run([]string{"export", "-run", latDir, "-out", file}); code != 0 {
		t.Fatalf("export of a latent run: exit code %d", code)
	}
	sameGrid(t, dir, latDir, file, "-class", "2", "-n", "4", "-steps", "2", "-seed", "7")
	g, err := generate.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if h, w, c := g.Shape(); h != 32 || w != 32 || c != 1 {
		t.Fatalf("generator of a latent model: images %dx%dx%d, want 32x32x1", h, w, c)
	}
	if imgs, err := g.Generate([]int{1, 2}, []uint64{0, 1}, generate.Options{Steps: 2}); err != nil || len(imgs) != 2*32*32 {
		t.Fatalf("generate from a latent model: %d values, %v", len(imgs), err)
	}
	if code := run([]string{"eval", "-run", latDir + "@2", "-model", file + "@2", "-n", "20", "-data-test", pq}); code != 0 {
		t.Fatalf("eval of a latent run and its export: exit code %d", code)
	}
	// The latent teacher's samples are latent rows with the scale and autoencoder of its data.
	synth := filepath.Join(dir, "synth-latent.parquet")
	if code := run([]string{"distill", "generate", "-teacher", latDir, "-n", "24", "-steps", "2", "-batch", "12", "-out", synth}); code != 0 {
		t.Fatalf("distill generate of a latent teacher: exit code %d", code)
	}
	scale0, ae0, _ := data.ReadLatentMeta(filepath.Join(dir, "lat0.parquet"))
	if scale, ae, err := data.ReadLatentMeta(synth); err != nil || scale != scale0 || ae != ae0 {
		t.Fatalf("latent synthetic data: scale %g (data %g), autoencoder %q (data %q), %v", scale, scale0, ae, ae0, err)
	}
	// LADD distils the latent teacher in latent space (truly latent LADD: heads on the latent
	// teacher's features); its grid and eval decode through the autoencoder.
	laddYAML := filepath.Join(dir, "latent-ladd.yaml")
	if err := os.WriteFile(laddYAML, []byte(`run:
  name: latent-ladd
  out_dir: `+dir+`
data:
  train: `+synth+`
  test: `+pq+`
  hflip: false
`+smokeModel+`trainer:
  steps: 2
  batch_size: 8
  sample_every: 2
  checkpoint_every: 2
sample:
  sampler: renoise
  steps: 2
  per_class: 1
distill:
  method: ladd
  teacher: `+latDir+`
  student_steps: 2
ladd:
  taps: [down1, mid]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"distill", "-config", laddYAML}); code != 0 {
		t.Fatalf("LADD of a latent teacher: exit code %d", code)
	}
	if code := run([]string{"eval", "-run", filepath.Join(dir, "latent-ladd") + "@1", "-n", "20"}); code != 0 {
		t.Fatalf("eval of a latent LADD student: exit code %d", code)
	}
	// SDXS in latent space: noise–latent pairs of the latent teacher train a pruned one-step student.
	pairs := filepath.Join(dir, "pairs-latent.parquet")
	if code := run([]string{"distill", "pairs", "-teacher", latDir, "-n", "16", "-steps", "2", "-batch", "8", "-out", pairs}); code != 0 {
		t.Fatalf("distill pairs of a latent teacher: exit code %d", code)
	}
	sdxsYAML := filepath.Join(dir, "latent-sdxs.yaml")
	sdxs := strings.NewReplacer("name: latent-ladd", "name: latent-sdxs", "train: "+synth, "train: "+pairs+"\n  noise: true",
		"  embed_dim: 32\n", "  embed_dim: 32\n  drop_blocks: [mid/attn]\n", "method: ladd", "method: sdxs", "student_steps: 2", "student_steps: 1",
		"ladd:\n  taps: [down1, mid]\n", "sdxs:\n  fm_taps: [down1, mid]\n  ssim_scales: 1\n  ssim_window: 5\n", "sampler: renoise\n  steps: 2", "sampler: ddim\n  steps: 1").
		Replace(string(readFile(t, laddYAML)))
	if err := os.WriteFile(sdxsYAML, []byte(sdxs), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"distill", "-config", sdxsYAML}); code != 0 {
		t.Fatalf("SDXS of a latent teacher:\n%s\nexit code %d", sdxs, code)
	}
	// SDXS's tiny decoder distils from the teacher's latents (the full decoder's images as targets
	// and as the discriminator's reals); sample and eval decode through it with -decoder.
	tinySets := []string{"-set", "data.train=" + synth, "-set", "trainer.batch_size=8", "-set", "run.out_dir=" + dir, "-set", "trainer.steps=4",
		"-set", "trainer.sample_every=4", "-set", "tiny_decoder.gan_start=2", "-set", "tiny_decoder.channels=8", "-set", "tiny_decoder.blocks=1"}
	if code := run(append([]string{"train", "-config", "fashion-tiny-decoder"}, tinySets...)); code != 0 {
		t.Fatalf("train fashion-tiny-decoder: exit code %d", code)
	}
	tinyDir := filepath.Join(dir, "fashion-tiny-decoder")
	recs, err := trainer.ReadMetrics(checkpoints.RunDir(tinyDir).MetricsPath())
	if err != nil || len(recs) == 0 {
		t.Fatalf("tiny decoder metrics: %d records, %v", len(recs), err)
	}
	if last := recs[len(recs)-1]; last.Terms["d_acc"] == 0 && last.Terms["g_adv"] == 0 {
		t.Errorf("tiny decoder: no adversarial terms logged after gan_start: %+v", last)
	}
	tinyPNG := filepath.Join(dir, "tiny.png")
	if code := run([]string{"sample", "-run", latDir, "-class", "2", "-n", "4", "-steps", "2", "-seed", "7", "-decoder", tinyDir, "-out", tinyPNG}); code != 0 {
		t.Fatalf("sample -decoder tiny: exit code %d", code)
	}
	if a, b := readFile(t, tinyPNG), readFile(t, filepath.Join(dir, "run.png")); bytes.Equal(a, b) {
		t.Error("sample -decoder tiny drew the full decoder's bytes")
	}
	if code := run([]string{"eval", "-run", latDir + "@2", "-run", latDir + "@1", "-decoder", "full," + tinyDir, "-n", "20", "-data-test", pq}); code != 0 {
		t.Fatalf("eval with a decoder per run: exit code %d", code)
	}
	if code := run([]string{"eval", "-run", latDir + "@2", "-decoder", "full,full", "-n", "20", "-data-test", pq}); code != 2 {
		t.Errorf("eval with 2 decoders for 1 run: exit code %d, want 2", code)
	}
	// eval decoder compares the tiny decoder with the full one on generated latents.
	if code := run([]string{"eval", "decoder", "-run", latDir, "-decoder", tinyDir, "-n", "6", "-steps", "2", "-batch", "4", "-repeats", "1"}); code != 0 {
		t.Errorf("eval decoder: exit code %d", code)
	}
	if code := run([]string{"eval", "decoder", "-run", latDir, "-decoder", runDir, "-n", "6", "-steps", "2"}); code != 2 {
		t.Errorf("eval decoder with an autoencoder run as -decoder: exit code %d, want 2", code)
	}
	// export -decoder carries the tiny decoder instead: sample -model draws sample -run -decoder's bytes.
	tinyFile := filepath.Join(dir, "latent-tiny.safetensors")
	if code := run([]string{"export", "-run", latDir, "-decoder", tinyDir, "-out", tinyFile}); code != 0 {
		t.Fatalf("export -decoder tiny: exit code %d", code)
	}
	if code := run([]string{"sample", "-model", tinyFile, "-class", "2", "-n", "4", "-steps", "2", "-seed", "7", "-out", filepath.Join(dir, "tiny-file.png")}); code != 0 {
		t.Fatalf("sample -model with a tiny decoder: exit code %d", code)
	}
	if !bytes.Equal(readFile(t, tinyPNG), readFile(t, filepath.Join(dir, "tiny-file.png"))) {
		t.Error("the exported tiny-decoder model samples other bytes than sample -run -decoder")
	}
	if code := run([]string{"sample", "-run", latDir, "-decoder", runDir}); code != 2 {
		t.Errorf("sample -decoder with an autoencoder run: exit code %d, want 2", code)
	}
	// A file whose decoder lacks a tensor is refused, naming the tensor.
	ts, md, err := checkpoints.ReadSafetensors(file)
	if err != nil {
		t.Fatal(err)
	}
	missing := export.DecoderPrefix + "conv_out/kernel"
	if _, ok := ts[missing]; !ok {
		t.Fatalf("exported latent model lacks %s", missing)
	}
	delete(ts, missing)
	if _, err := export.Parse(ts, md); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("latent model without %s: error %v, want one naming it", missing, err)
	}
	// A changed autoencoder checkpoint is refused, naming it.
	ckpt := filepath.Join(runDir, "checkpoints", "ckpt-000000004.safetensors")
	f, err = os.OpenFile(ckpt, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	if code := run(append([]string{"train", "-config", "smoke"}, append(latSets, "-set", "run.name=latent2")...)); code != 1 {
		t.Fatalf("train on latents of a changed autoencoder: exit code %d, want 1", code)
	}
	if code := run(append([]string{"train", "-config", "smoke"}, "-set", "data.train="+pq, "-set", "run.out_dir="+dir, "-set", "trainer.steps=2")); code != 0 {
		t.Fatalf("train smoke: exit code %d", code)
	}
	if code := run([]string{"eval", "-autoencoder", filepath.Join(dir, "smoke"), "-n", "40"}); code != 2 {
		t.Fatalf("eval -autoencoder on a denoiser run: exit code %d, want 2", code)
	}
}

// readFile returns a file's bytes or fails the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
