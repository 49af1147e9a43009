package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

var (
	backendOnce sync.Once
	backend     compute.Backend
	backendErr  error
)

// goBackend is one pure-Go backend shared by the tests (tensors of the shared classifier live on it).
func goBackend(t *testing.T) compute.Backend {
	t.Helper()
	backendOnce.Do(func() { backend, backendErr = compute.NewWithConfig("go") })
	if backendErr != nil {
		t.Fatal(backendErr)
	}
	return backend
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

// mnistTestSplit imports the real MNIST test split (from the GoMNIST module) once.
func mnistTestSplit(t *testing.T) string {
	t.Helper()
	fixtureOnce.Do(func() {
		dir, err := data.FindGoMNIST()
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureDir, fixtureErr = os.MkdirTemp("", "fewstep-eval-test-")
		os.Setenv("FEWSTEP_CACHE_DIR", fixtureDir) // classifiers trained by the tests go here
		if fixtureErr == nil {
			_, fixtureErr = data.ImportMNIST(dir, "test", filepath.Join(fixtureDir, "mnist-test.parquet"))
		}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return filepath.Join(fixtureDir, "mnist-test.parquet")
}

// smallData is MNIST digits 0 and 1 only (about 2,100 images): train and test on the same split.
func smallData(t *testing.T) data.Config {
	dc := data.DefaultConfig()
	dc.Train, dc.Test = mnistTestSplit(t), mnistTestSplit(t)
	dc.Labels = []int{0, 1}
	return dc
}

var (
	classifierOnce sync.Once
	classifier     *TrainedClassifier
	classifierErr  error
)

// smallClassifier trains, once per test binary, a classifier for one epoch on digits 0/1.
func smallClassifier(t *testing.T, backend compute.Backend, dc data.Config) *TrainedClassifier {
	t.Helper()
	classifierOnce.Do(func() {
		classifier, classifierErr = TrainClassifier(backend, ClassifierOptions{Data: dc, Epochs: 1, BatchSize: 64, Out: io.Discard})
	})
	if classifierErr != nil {
		t.Fatal(classifierErr)
	}
	return classifier
}

// smallTestSet is the small classifier with its test-split features, predictions and labels.
func smallTestSet(t *testing.T) (compute.Backend, data.Config, *TrainedClassifier, *TestSet) {
	t.Helper()
	b := goBackend(t)
	dc := smallData(t)
	tc := smallClassifier(t, b, dc)
	test, err := tc.LoadTestSet(b, dc)
	if err != nil {
		t.Fatal(err)
	}
	return b, dc, tc, test
}

// TestClassifierAndMetricsOnImages trains a small classifier (1 epoch on digits 0/1), checks it
// learned (accuracy), that its cache round-trips, and that FID on its features grows
// monotonically as test images get noisier.
func TestClassifierAndMetricsOnImages(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a classifier")
	}
	b := goBackend(t)
	dc := smallData(t)
	tc := smallClassifier(t, b, dc)
	if tc.TestAccuracy < 0.9 {
		t.Errorf("0-vs-1 classifier accuracy %.3f after one epoch, want ≥ 0.9", tc.TestAccuracy)
	}
	again, err := ClassifierFor(b, dc, io.Discard)
	if err != nil || again.TestAccuracy != tc.TestAccuracy || again.Path != tc.Path {
		t.Fatalf("cached classifier: %v, %+v", err, again)
	}
	test, err := again.LoadTestSet(b, dc)
	if err != nil {
		t.Fatal(err)
	}
	clean, err := FitGaussian(test.Features, test.N, FeatureDim)
	if err != nil {
		t.Fatal(err)
	}
	// The feature scales give the parts mean per-feature variance 1 and textureWeight on the test
	// split (the unbiased covariance here: n/(n−1) of it).
	for _, part := range []struct {
		name   string
		lo, hi int
		want   float64
	}{{"semantic", 0, SemanticDim, 1}, {"texture", SemanticDim, FeatureDim, textureWeight}} {
		var tr float64
		for j := part.lo; j < part.hi; j++ {
			tr += clean.Cov[j*FeatureDim+j]
		}
		if v := tr / float64(part.hi-part.lo); math.Abs(v-part.want) > 2e-3 {
			t.Errorf("%s features: mean per-feature variance %.5f on the test split, want %g", part.name, v, part.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prev := -1.0
	for _, std := range []float32{0, 0.2, 0.6} {
		noisy := make([]float32, len(test.Images))
		for i, v := range test.Images {
			noisy[i] = v + std*float32(rng.NormFloat64())
		}
		feats, _, err := again.Features(b, noisy, test.N, 32, 32, 1)
		if err != nil {
			t.Fatal(err)
		}
		st, err := FitGaussian(feats, test.N, FeatureDim)
		if err != nil {
			t.Fatal(err)
		}
		fid, err := FID(st, clean)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("noise std %.1f: FID %.4f", std, fid)
		if std == 0 && fid > 1e-6 {
			t.Errorf("FID of the test set against itself = %g, want ~0", fid)
		}
		if fid <= prev {
			t.Errorf("FID %.4f at noise %.1f is not above %.4f at the previous level", fid, std, prev)
		}
		prev = fid
	}
}

// TestEvaluateEndToEnd trains a tiny teacher for a few steps and evaluates it at two step counts:
// the table, its files and the comparison grid are produced with sane values.
func TestEvaluateEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a classifier and a teacher")
	}
	b, dc, tc, test := smallTestSet(t)
	job := tinyTeacher(t, dc)
	if _, err := trainer.Train(context.Background(), b, job, trainer.Options{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(b, []RunSpec{{Name: "tiny", Job: job}}, tc, test, Options{Steps: []int{1, 2}, CFG: -1, N: 20, Batch: 10, Compare: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 || res.Rows[0].Steps != 1 || res.Rows[1].NFE != 4 {
		t.Fatalf("rows %+v", res.Rows)
	}
	for _, r := range res.Rows {
		if r.FID < 0 || r.ClassAcc < 0 || r.ClassAcc > 1 || r.Precision < 0 || r.Recall > 1 || r.MsPerImage <= 0 {
			t.Errorf("implausible row %+v", r)
		}
	}
	dir := t.TempDir()
	if err := WriteCSV(filepath.Join(dir, "e.csv"), res); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(filepath.Join(dir, "e.json"), res); err != nil {
		t.Fatal(err)
	}
	if err := WriteComparison(filepath.Join(dir, "c.png"), res); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "e.json"))
	var back struct{ Rows []Row }
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Rows) != 2 {
		t.Fatalf("eval.json: %v, %d rows", err, len(back.Rows))
	}
	if md := Markdown(res); !strings.Contains(md, "| tiny | 2 | ddim |") || !strings.Contains(md, "not comparable with Inception") {
		t.Errorf("markdown table:\n%s", md)
	}
}

// tinyTeacher is a 5-step class-conditional teacher on digits 0/1 (2 classes).
func tinyTeacher(t *testing.T, dc data.Config) trainer.Job {
	mc := models.DefaultConfig()
	mc.PatchSize, mc.BaseChannels, mc.ChannelMult, mc.AttentionHeads, mc.Groups = 2, 8, []int{1, 2}, 2, 4
	mc.TimeFeatures, mc.EmbedDim = 16, 32
	tcfg := trainer.DefaultConfig()
	tcfg.Steps, tcfg.BatchSize, tcfg.LogEvery, tcfg.SampleEvery = 5, 16, 1, 0
	sc := sampling.DefaultConfig()
	sc.PerClass = 1
	return trainer.Job{RunDir: checkpoints.RunDir(t.TempDir()), Seed: 1, Data: dc, Model: mc,
		Diffusion: models.DefaultDiffusionConfig(), Trainer: tcfg, Sample: sc, ConfigYAML: []byte("# test\n")}
}

func TestBalancedClasses(t *testing.T) {
	seeds, classes := balanced(25, 10, 7)
	counts := map[int32]int{}
	for i, c := range classes {
		counts[c]++
		if seeds[i] != uint64(7+i) {
			t.Fatalf("seed %d = %d", i, seeds[i])
		}
	}
	for c := range int32(10) {
		if counts[c] < 2 || counts[c] > 3 {
			t.Fatalf("class %d has %d of 25 images", c, counts[c])
		}
	}
}

// TestSettings: samplers × schedules × steps, schedule files once each with their own steps.
func TestSettings(t *testing.T) {
	got := settings(Options{Steps: []int{4, 8}, Samplers: []string{"ddim", "heun"}, Schedules: []string{"karras", "runs/x/ays-10.json"}})
	var names []string
	for _, s := range got {
		names = append(names, s.String())
	}
	want := "[ddim karras 4 steps ddim karras 8 steps ddim runs/x/ays-10.json heun karras 4 steps heun karras 8 steps heun runs/x/ays-10.json]"
	if fmt.Sprint(names) != want {
		t.Errorf("settings %v\nwant %s", names, want)
	}
	if got := settings(Options{Steps: []int{1, 2}}); len(got) != 2 || got[0].sampler != "" || got[1].steps != 2 {
		t.Errorf("default settings %+v", got)
	}
}
