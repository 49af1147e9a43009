package generate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

var fixture struct {
	dir  string
	job  trainer.Job
	file string // the run exported (EMA weights)
}

// TestMain imports the MNIST test split, trains a tiny model for 10 steps and exports it, once.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fewstep-generate-test-")
	if err != nil {
		panic(err)
	}
	fixture.dir = dir
	code := func() int {
		src, err := data.FindGoMNIST()
		if err != nil {
			panic(err)
		}
		mnist := filepath.Join(dir, "mnist-test.parquet")
		if _, err := data.ImportMNIST(src, "test", mnist); err != nil {
			panic(err)
		}
		fixture.job = tinyJob(filepath.Join(dir, "run"), mnist, 10)
		backend, err := compute.NewWithConfig("go")
		if err != nil {
			panic(err)
		}
		if _, err := trainer.Train(context.Background(), backend, fixture.job, trainer.Options{Out: io.Discard}); err != nil {
			panic(err)
		}
		fixture.file = filepath.Join(dir, "model.safetensors")
		if _, err := exportRun(fixture.file, false); err != nil {
			panic(err)
		}
		return m.Run()
	}()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// tinyJob is a small class-conditional U-Net on the MNIST test split.
func tinyJob(dir, mnist string, steps int) trainer.Job {
	dc := data.DefaultConfig()
	dc.Train, dc.Test = mnist, mnist
	mc := models.DefaultConfig()
	mc.PatchSize, mc.BaseChannels, mc.ChannelMult, mc.AttentionResolutions = 2, 8, []int{1, 2}, []int{8}
	mc.AttentionHeads, mc.Groups, mc.TimeFeatures, mc.EmbedDim = 2, 4, 16, 32
	tc := trainer.DefaultConfig()
	tc.Steps, tc.BatchSize, tc.LR, tc.WarmupSteps, tc.LogEvery, tc.CheckpointEvery, tc.SampleEvery = steps, 8, 1e-3, 2, 1, 1000, 0
	tc.EMADecay = 0.5 // EMA and raw weights differ visibly after 10 steps
	sc := sampling.DefaultConfig()
	sc.Steps, sc.PerClass, sc.BatchSize = 3, 1, 4
	return trainer.Job{RunDir: checkpoints.RunDir(dir), Seed: 3, Data: dc, Model: mc, Diffusion: models.DefaultDiffusionConfig(),
		Trainer: tc, Sample: sc, ConfigYAML: []byte("# test\n")}
}

// runConfig is the resolved config of the fixture run (what `fewstep export` loads from RUN/config.yaml).
func runConfig() configs.Run {
	r := configs.Default()
	j := fixture.job
	r.Data, r.Model, r.Diffusion, r.Trainer, r.Sample = j.Data, j.Model, j.Diffusion, j.Trainer, j.Sample
	return r
}

// exportRun exports the fixture run's newest checkpoint as `fewstep export` does.
func exportRun(path string, raw bool) (*export.Model, error) {
	step, ts, _, err := checkpoints.LoadLatest(fixture.job.RunDir)
	if err != nil {
		return nil, err
	}
	m, err := runConfig().ExportModel(fixture.job.RunDir, step, ts, raw)
	if err != nil {
		return nil, err
	}
	return m, export.Write(path, m)
}

func rawBytes(t *testing.T, x *tensors.Tensor) []byte {
	t.Helper()
	var out []byte
	if err := x.ConstBytes(func(d []byte) { out = slices.Clone(d) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportRoundTripBitExact: every tensor of the exported file equals the checkpoint's EMA (or,
// with -raw, /model) tensor bit for bit, and nothing else is exported.
func TestExportRoundTripBitExact(t *testing.T) {
	step, ts, _, err := checkpoints.LoadLatest(fixture.job.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "m.safetensors")
		if _, err := exportRun(path, raw); err != nil {
			t.Fatal(err)
		}
		m, err := export.ReadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		scope := map[bool]string{false: "ema", true: "model"}[raw]
		n := 0
		for name, x := range ts {
			rest, ok := strings.CutPrefix(name, scope+"/")
			if !ok {
				continue
			}
			n++
			got, ok := m.Tensors[rest]
			if !ok {
				t.Fatalf("%s: %s not exported as %s", scope, name, rest)
			}
			if !got.Shape().Equal(x.Shape()) || !bytes.Equal(rawBytes(t, got), rawBytes(t, x)) {
				t.Errorf("%s: tensor %s differs from the checkpoint's %s", scope, rest, name)
			}
		}
		if n != len(m.Tensors) || n == 0 {
			t.Errorf("%s: exported %d tensors, the checkpoint has %d %s/* tensors", scope, len(m.Tensors), n, scope)
		}
		if m.Source.Step != step || m.Source.Weights != scope || m.Source.Run != string(fixture.job.RunDir) || m.Distilled {
			t.Errorf("source %+v, distilled %v", m.Source, m.Distilled)
		}
	}
}

// TestGenerateMatchesRun: images generated from the exported file equal those of the run
// directory's sampler (trainer.GridSampler over its checkpoint, as `fewstep sample -run` does) bit
// for bit, for the recommended sampler and for overrides.
func TestGenerateMatchesRun(t *testing.T) {
	g, err := Load(fixture.file)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	if _, err := trainer.LoadWeights(fixture.job.RunDir, -1, store); err != nil {
		t.Fatal(err)
	}
	classes, seeds := []int{0, 3, 7, 10, 9}, []uint64{11, 12, 13, 14, 15}
	cond := []int32{0, 3, 7, 10, 9}
	for _, opts := range []Options{{}, {Sampler: "dpmpp-2m", Steps: 2, CFG: 1.5, Spacing: "karras"}, {Sampler: "sde", BatchSize: 2}} {
		got, err := g.Generate(classes, seeds, opts)
		if err != nil {
			t.Fatal(err)
		}
		job := fixture.job
		if job.Sample, err = g.Config(opts); err != nil {
			t.Fatal(err)
		}
		s, err := trainer.GridSampler(backend, store, job)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.Sample(seeds, cond, 32, 32, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(got) != len(seeds)*32*32 {
			t.Fatalf("%+v: %d values, want %d", opts, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%+v: value %d is %v from the file, %v from the run", opts, i, got[i], want[i])
			}
		}
	}
}

// TestGenerateDefaultsAndErrors: the file's sampler is the default, and bad requests are errors.
func TestGenerateDefaultsAndErrors(t *testing.T) {
	g, err := Load(fixture.file)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := g.Config(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := fixture.job.Sample; sc.Sampler != want.Sampler || sc.Steps != want.Steps || sc.CFG != want.CFG || sc.Spacing != want.Spacing || sc.BatchSize != want.BatchSize {
		t.Errorf("default config %+v, want the run's %+v", sc, want)
	}
	for _, tc := range []struct {
		classes []int
		seeds   []uint64
		opts    Options
		want    string
	}{
		{[]int{1}, []uint64{1, 2}, Options{}, "1 classes but 2 seeds"},
		{[]int{11}, []uint64{1}, Options{}, "class 11 of image 0 is outside [0, 10]"},
		{[]int{1}, []uint64{1}, Options{Sampler: "rk4"}, `sample.sampler: unknown value "rk4"`},
	} {
		if _, err := g.Generate(tc.classes, tc.seeds, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Generate(%v, %v, %+v) error %v, want %q", tc.classes, tc.seeds, tc.opts, err, tc.want)
		}
	}
	imgs, err := g.Generate([]int{1, 2}, []uint64{1, 2}, Options{Steps: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		png, err := g.PNG(imgs, i)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Errorf("PNG(%d): %v", i, err)
		}
	}
	if _, err := g.PNG(imgs, 2); err == nil {
		t.Errorf("PNG(2) of 2 images succeeded")
	}
}

// TestExportDistilled: a checkpoint with /teacher weights exports as a distilled student with the
// run's student times, without the teacher, and the student spacing samples on those times.
func TestExportDistilled(t *testing.T) {
	step, ts, _, err := checkpoints.LoadLatest(fixture.job.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	ts["teacher/stem/kernel"] = ts["ema/stem/kernel"]
	r := runConfig()
	r.Distill.StudentSteps, r.Distill.StudentTimes = 3, []float64{1, 0.5, 0.25}
	r.Sample.Spacing = "student"
	m, err := r.ExportModel(fixture.job.RunDir, step, ts, false)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "student.safetensors")
	if err := export.Write(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := export.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Distilled || !slices.Equal(got.StudentTimes, []float64{1, 0.5, 0.25}) {
		t.Errorf("distilled %v, student times %v; want true, [1 0.5 0.25]", got.Distilled, got.StudentTimes)
	}
	g, err := New(got, nil) // times only: nothing runs
	if err != nil {
		t.Fatal(err)
	}
	for steps, want := range map[int][]float64{3: {1, 0.5, 0.25, 0}, 2: {1, 0.5, 0}} {
		sc, err := g.Config(Options{Steps: steps})
		if err != nil {
			t.Fatal(err)
		}
		s, err := g.sampler(sc)
		if err != nil {
			t.Fatal(err)
		}
		if times := s.Times(); !slices.Equal(times, want) {
			t.Errorf("student spacing at %d steps: times %v, want %v", steps, times, want)
		}
	}
	if _, ok := got.Tensors["teacher/stem/kernel"]; ok {
		t.Errorf("the teacher was exported")
	}
}

// TestExportONNXNeedsONNXRuntime: on the pure-Go backend ONNX export says what it needs.
func TestExportONNXNeedsONNXRuntime(t *testing.T) {
	g, err := Load(fixture.file)
	if err != nil {
		t.Fatal(err)
	}
	if g.backend.Name() != "go" && !strings.Contains(g.backend.Name(), "Go") {
		t.Skipf("backend %s", g.backend.Name())
	}
	err = g.ExportONNX(filepath.Join(t.TempDir(), "m.onnx"), "", 1, Options{})
	if !errors.Is(err, ErrNeedsONNXRuntime) {
		t.Fatalf("ExportONNX on %s: %v, want ErrNeedsONNXRuntime", g.backend.Name(), err)
	}
}

// textModelFile trains a tiny caption-conditioned model on the fixture's MNIST split for 4 steps
// and exports its EMA weights to path.
func textModelFile(t *testing.T, path string, edits ...func(*trainer.Job)) *export.Model {
	t.Helper()
	job := tinyJob(filepath.Join(t.TempDir(), "text"), fixture.job.Data.Train, 4)
	vocab, names, err := data.ReadTextMeta(job.Data.Train)
	if err != nil {
		t.Fatal(err)
	}
	job.Data.Condition, job.Data.MaxTokens = data.ConditionCaption, 6
	job.Model.Text = models.TextConfig{Source: models.TextLearned, Layers: 1, Width: 16, Heads: 2, MaxTokens: 6, Vocab: vocab,
		ClassNames: names, CrossAttentionResolutions: []int{8}, MidCross: true}
	for _, edit := range edits {
		edit(&job)
	}
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Train(context.Background(), backend, job, trainer.Options{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	step, ts, _, err := checkpoints.LoadLatest(job.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	r := configs.Default()
	r.Data, r.Model, r.Diffusion, r.Trainer, r.Sample = job.Data, job.Model, job.Diffusion, job.Trainer, job.Sample
	m, err := r.ExportModel(job.RunDir, step, ts, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := export.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGeneratePrompts: a text model's file generates from prompts (prompts that tokenize the same
// give the same images); class lists are refused for it, and the empty prompt is the unconditional
// model (its condition is the null class and all padding).
func TestGeneratePrompts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "text.safetensors")
	textModelFile(t, file)
	g, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Generate([]int{1}, []uint64{0}, Options{}); err == nil {
		t.Error("Generate with classes accepted a text model")
	}
	a, err := g.GeneratePrompts([]string{"the digit 7", ""}, []uint64{3, 4}, Options{Steps: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.GeneratePrompts([]string{"THE digit 7!", ""}, []uint64{3, 4}, Options{Steps: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Error("prompts that tokenize the same generate different images")
	}
	cond, _, err := g.PromptCond([]string{""})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int32, g.Model().Model.CondWidth())
	want[0] = int32(g.Model().Model.NumClasses)
	if !slices.Equal(cond, want) {
		t.Errorf("empty prompt's condition %v, want %v", cond, want)
	}
}

// onDiT turns a test job into a 2-block caption-conditioned DiT (4×4 patches, width 16).
func onDiT(job *trainer.Job) {
	job.Model.Arch, job.Model.PatchSize = models.ArchDiT, 4
	job.Model.DiT = models.DiTConfig{Hidden: 16, Depth: 2, Heads: 2, MLPRatio: 2}
}

// TestGenerateDiT: an exported caption-conditioned DiT (model.arch dit) generates from prompts with
// the file alone; an image does not depend on the rest of its batch (beyond float summation order,
// 1e-4) and different prompts give different images.
func TestGenerateDiT(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dit.safetensors")
	m := textModelFile(t, file, onDiT)
	if m.Model.Arch != models.ArchDiT {
		t.Fatalf("exported arch %q", m.Model.Arch)
	}
	g, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	prompts, seeds := []string{"the digit 1", "a handwritten seven", ""}, []uint64{4, 5, 6}
	imgs, err := g.GeneratePrompts(prompts, seeds, Options{Steps: 3, CFG: 2})
	if err != nil {
		t.Fatal(err)
	}
	again, err := g.GeneratePrompts(prompts[:2], seeds[:2], Options{Steps: 3, CFG: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := len(again)
	var diff float64
	for i := range again {
		diff = max(diff, math.Abs(float64(imgs[i]-again[i])))
	}
	if diff > 1e-4 {
		t.Fatalf("DiT generation depends on the batch: max difference %g", diff)
	}
	if slices.Equal(imgs[:n/2], imgs[n/2:n]) {
		t.Fatal("two prompts give the same image")
	}
}
