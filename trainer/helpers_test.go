package trainer

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
)

var (
	mnistOnce sync.Once
	mnistPath string
	mnistErr  error
)

// mnistTest imports the real MNIST test split (10,000 images, from the GoMNIST module) once per
// test binary and returns the Parquet path.
func mnistTest(t *testing.T) string {
	t.Helper()
	mnistOnce.Do(func() {
		dir, err := data.FindGoMNIST()
		if err != nil {
			mnistErr = err
			return
		}
		mnistPath = filepath.Join(tempDirForPackage(), "mnist-test.parquet")
		_, mnistErr = data.ImportMNIST(dir, "test", mnistPath)
	})
	if mnistErr != nil {
		t.Fatalf("MNIST fixture: %v", mnistErr)
	}
	return mnistPath
}

var pkgTmp string

func tempDirForPackage() string { return pkgTmp }

func testBackend(t *testing.T) compute.Backend {
	t.Helper()
	b, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyJob is a small class-conditional model on real MNIST that trains in well under a minute.
func tinyJob(t *testing.T, dir string, steps int) Job {
	t.Helper()
	dc := data.DefaultConfig()
	dc.Train = mnistTest(t)
	mc := models.DefaultConfig()
	mc.PatchSize = 2
	mc.BaseChannels = 8
	mc.ChannelMult = []int{1, 2}
	mc.AttentionResolutions = []int{8}
	mc.AttentionHeads = 2
	mc.Groups = 4
	mc.TimeFeatures = 16
	mc.EmbedDim = 32
	tc := DefaultConfig()
	tc.Steps = steps
	tc.BatchSize = 16
	tc.LR = 2e-3
	tc.WarmupSteps = 5
	tc.LogEvery = 1
	tc.CheckpointEvery = 1000
	tc.SampleEvery = 0
	sc := sampling.DefaultConfig()
	sc.Steps = 4
	sc.PerClass = 1
	return Job{RunDir: checkpoints.RunDir(dir), Seed: 7, Data: dc, Model: mc, Diffusion: models.DefaultDiffusionConfig(),
		Trainer: tc, Sample: sc, ConfigYAML: []byte("# test\n")}
}
