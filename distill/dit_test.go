package distill

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

var (
	ditTeacherOnce sync.Once
	ditTeacher     Teacher
	ditTeacherErr  error
)

// ditJob is textJob on the transformer: a 2-block DiT (4×4 patches, width 16) reading the captions.
func ditJob(t *testing.T, dir string, steps int) trainer.Job {
	t.Helper()
	job := textJob(t, dir, steps)
	job.Model.Arch, job.Model.PatchSize = models.ArchDiT, 4
	job.Model.DiT = models.DiTConfig{Hidden: 16, Depth: 2, Heads: 2, MLPRatio: 2}
	return job
}

// ditTeacherFixture trains a tiny caption-conditioned DiT teacher once per test binary.
func ditTeacherFixture(t *testing.T) Teacher {
	t.Helper()
	ditTeacherOnce.Do(func() {
		job := ditJob(t, filepath.Join(fixture.dir, "dit-teacher"), 8)
		if _, ditTeacherErr = trainer.Train(context.Background(), backendT(t), job, trainer.Options{Out: io.Discard}); ditTeacherErr == nil {
			ditTeacher = Teacher{Dir: job.RunDir, Model: job.Model, Diffusion: job.Diffusion}
		}
	})
	if ditTeacherErr != nil {
		t.Fatal(ditTeacherErr)
	}
	return ditTeacher
}

// TestLADDOnDiT: LADD's heads read the transformer teacher's block outputs (tokens as 2-D maps, as
// the paper's heads on MMDiT), project on the pooled caption, and a run resumed halfway is exact.
func TestLADDOnDiT(t *testing.T) {
	teacher := ditTeacherFixture(t)
	cfg, lc := testLADD()
	cfg.Teacher = string(teacher.Dir)
	lc.Taps, lc.DistillCFG = []string{"block0", "block1"}, 2
	p := straightAndResumed(t, func(dir string) trainer.Job { return ditJob(t, dir, 4) },
		func() trainer.MethodFactory { return NewLADD(cfg, lc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"g_adv", "g_distill", "d_loss"} })
	heads := 0
	for name := range p.ta {
		if strings.Contains(name, "/block0/") || strings.Contains(name, "/block1/") {
			heads++
		}
	}
	if heads == 0 {
		t.Fatal("no head or block tensors in the checkpoint")
	}
}

// TestImagineFlashOnDiT: Imagine Flash distills the transformer teacher; resume is exact.
func TestImagineFlashOnDiT(t *testing.T) {
	teacher := ditTeacherFixture(t)
	cfg, fc, lc := testIF()
	cfg.Teacher = string(teacher.Dir)
	p := straightAndResumed(t, func(dir string) trainer.Job { return ditJob(t, dir, 4) },
		func() trainer.MethodFactory { return NewImagineFlash(cfg, fc, lc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return nil })
}

// TestSDXSOnDiT: SDXS trains a student with a whole transformer block dropped by name
// (model.drop_blocks: [block1]) on captioned noise–image pairs, feature matching on block0.
func TestSDXSOnDiT(t *testing.T) {
	teacher := ditTeacherFixture(t)
	dir := t.TempDir()
	pairs := writePairs(t, filepath.Join(dir, "text-pairs.parquet"), teacher.Model.Text.Vocab)
	cfg, sc, _ := testSDXS(t, dir, 4)
	cfg.Teacher = string(teacher.Dir)
	sc.FMTaps = []string{"block0"}
	p := straightAndResumed(t, func(sub string) trainer.Job {
		job := ditJob(t, sub, 4)
		job.Model.DropBlocks = []string{"block1"}
		job.Data.Train, job.Data.Noise = pairs, true
		return job
	}, func() trainer.MethodFactory { return NewSDXS(cfg, sc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"ssim", "fm", "sd"} })
	for name := range p.ta {
		if strings.Contains(name, "block1/") && !strings.HasPrefix(name, "teacher/") && !strings.Contains(name, "disc") {
			t.Fatalf("dropped block1 has tensor %s in the student's checkpoint", name)
		}
	}
}

// TestLADDOnMMDiT: LADD on the SD3-style joint-attention transformer (model.arch mmdit), the
// setting of the LADD paper (heads on the MMDiT teacher's block outputs); resume is exact.
func TestLADDOnMMDiT(t *testing.T) {
	mm := func(dir string, steps int) trainer.Job {
		job := ditJob(t, dir, steps)
		job.Model.Arch = models.ArchMMDiT
		return job
	}
	job := mm(filepath.Join(t.TempDir(), "mmdit-teacher"), 6)
	if _, err := trainer.Train(context.Background(), backendT(t), job, trainer.Options{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	teacher := Teacher{Dir: job.RunDir, Model: job.Model, Diffusion: job.Diffusion}
	cfg, lc := testLADD()
	cfg.Teacher = string(teacher.Dir)
	lc.Taps, lc.DistillCFG = []string{"block0", "block1"}, 2
	p := straightAndResumed(t, func(dir string) trainer.Job { return mm(dir, 4) },
		func() trainer.MethodFactory { return NewLADD(cfg, lc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"g_adv", "g_distill", "d_loss"} })
}

// TestLCMLoRAOnDiT: LCM-LoRA (rank 2 adapters on attention and MLPs) distils the caption-conditioned
// transformer teacher; a run resumed halfway is exact.
func TestLCMLoRAOnDiT(t *testing.T) {
	teacher := ditTeacherFixture(t)
	cfg, _ := testLADD()
	cfg.Teacher, cfg.Method = string(teacher.Dir), "lcm"
	p := straightAndResumed(t, func(dir string) trainer.Job {
		job := ditJob(t, dir, 4)
		job.Model.LoRA = &models.LoRAConfig{Rank: 2, Targets: []string{"attention", "mlp"}}
		return job
	}, func() trainer.MethodFactory { return NewLCM(cfg, DefaultLCMConfig(), teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"lcm"} })
	p.checkAdapters(t, "LCM-LoRA")
}

// testPeRFlow is the PeRFlow setup of the fixture tests: the teacher's run, 2 teacher steps per window.
func testPeRFlow(teacher Teacher) (Config, PeRFlowConfig) {
	cfg, _ := testLADD()
	cfg.Teacher, cfg.Method = string(teacher.Dir), "perflow"
	pc := DefaultPeRFlowConfig()
	pc.TeacherSteps = 2
	return cfg, pc
}

// TestPeRFlowOnDiT: PeRFlow distils the caption-conditioned transformer teacher; resume is exact.
func TestPeRFlowOnDiT(t *testing.T) {
	teacher := ditTeacherFixture(t)
	cfg, pc := testPeRFlow(teacher)
	p := straightAndResumed(t, func(dir string) trainer.Job { return ditJob(t, dir, 4) },
		func() trainer.MethodFactory { return NewPeRFlow(cfg, pc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"perflow"} })
}
