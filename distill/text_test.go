package distill

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

var (
	textTeacherOnce sync.Once
	textTeacher     Teacher
	textTeacherErr  error
)

// textJob is tinyJob conditioned on the captions (caption templates of the MNIST fixture).
func textJob(t *testing.T, dir string, steps int) trainer.Job {
	t.Helper()
	job := tinyJob(dir, steps)
	vocab, names, err := data.ReadTextMeta(job.Data.Train)
	if err != nil {
		t.Fatal(err)
	}
	job.Data.Condition, job.Data.MaxTokens = data.ConditionCaption, 6
	job.Model.Text = models.TextConfig{Source: models.TextLearned, Layers: 1, Width: 16, Heads: 2, MaxTokens: 6, Vocab: vocab,
		ClassNames: names, CrossAttentionResolutions: []int{8}, MidCross: true}
	return job
}

// textTeacherFixture trains a tiny caption-conditioned teacher once per test binary.
func textTeacherFixture(t *testing.T) Teacher {
	t.Helper()
	textTeacherOnce.Do(func() {
		job := textJob(t, filepath.Join(fixture.dir, "text-teacher"), 8)
		if _, textTeacherErr = trainer.Train(context.Background(), backendT(t), job, trainer.Options{Out: io.Discard}); textTeacherErr == nil {
			textTeacher = Teacher{Dir: job.RunDir, Model: job.Model, Diffusion: job.Diffusion}
		}
	})
	if textTeacherErr != nil {
		t.Fatal(textTeacherErr)
	}
	return textTeacher
}

// TestLADDOnTextTeacher: LADD distills a caption-conditioned teacher (heads projecting on the
// teacher's pooled caption, the teacher's CFG solve with the empty caption as null), and a run
// resumed halfway is exact.
func TestLADDOnTextTeacher(t *testing.T) {
	teacher := textTeacherFixture(t)
	cfg, lc := testLADD()
	cfg.Teacher = string(teacher.Dir)
	lc.DistillCFG = 2
	p := straightAndResumed(t, func(dir string) trainer.Job { return textJob(t, dir, 4) },
		func() trainer.MethodFactory { return NewLADD(cfg, lc, teacher) }, 2)
	scopes := p.checkExact(t, 4, func(int) []string { return []string{"g_adv", "g_distill", "d_loss"} })
	if scopes["disc"] == 0 {
		t.Fatalf("no head tensors: %v", scopes)
	}
	found := false
	for name := range p.ta {
		if filepath.Base(filepath.Dir(name)) == "text" && filepath.Dir(filepath.Dir(name)) != "" {
			found = true
		}
	}
	if !found {
		t.Error("no head projects on the pooled caption (no disc/<tap>/text tensors)")
	}
}

// TestImagineFlashOnTextTeacher: Imagine Flash distills a caption-conditioned teacher; every logged
// term is finite and resume is exact.
func TestImagineFlashOnTextTeacher(t *testing.T) {
	teacher := textTeacherFixture(t)
	cfg, fc, lc := testIF()
	cfg.Teacher = string(teacher.Dir)
	p := straightAndResumed(t, func(dir string) trainer.Job { return textJob(t, dir, 4) },
		func() trainer.MethodFactory { return NewImagineFlash(cfg, fc, lc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return nil })
}

// TestSDXSOnTextTeacher: SDXS trains a pruned student of a caption-conditioned teacher on captioned
// noise–image pairs (feature matching and the corrective read the caption too); resume is exact.
func TestSDXSOnTextTeacher(t *testing.T) {
	teacher := textTeacherFixture(t)
	dir := t.TempDir()
	pairs := writePairs(t, filepath.Join(dir, "text-pairs.parquet"), teacher.Model.Text.Vocab)
	cfg, sc, _ := testSDXS(t, dir, 4)
	cfg.Teacher = string(teacher.Dir)
	p := straightAndResumed(t, func(sub string) trainer.Job {
		job := textJob(t, sub, 4)
		job.Model.DropBlocks = prunedBlocks
		job.Data.Train, job.Data.Noise = pairs, true
		return job
	}, func() trainer.MethodFactory { return NewSDXS(cfg, sc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"ssim", "fm", "sd"} })
}

// TestLCMOnTextTeacher: LCM (full fine-tune, EMA target) distils the caption-conditioned U-Net
// teacher (the guided teacher step uses the empty caption as null); resume is exact.
func TestLCMOnTextTeacher(t *testing.T) {
	teacher := textTeacherFixture(t)
	cfg, _ := testLADD()
	cfg.Teacher, cfg.Method = string(teacher.Dir), "lcm"
	p := straightAndResumed(t, func(dir string) trainer.Job { return textJob(t, dir, 4) },
		func() trainer.MethodFactory { return NewLCM(cfg, DefaultLCMConfig(), teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"lcm"} })
}

// TestPeRFlowLoRAOnTextTeacher: PeRFlow with rank-2 adapters on the caption-conditioned U-Net
// teacher (its cross-attention included); resume is exact and the checkpoint holds adapters.
func TestPeRFlowLoRAOnTextTeacher(t *testing.T) {
	teacher := textTeacherFixture(t)
	cfg, pc := testPeRFlow(teacher)
	p := straightAndResumed(t, func(dir string) trainer.Job {
		job := textJob(t, dir, 4)
		job.Model.LoRA = &models.LoRAConfig{Rank: 2, Targets: []string{"attention", "conv"}}
		return job
	}, func() trainer.MethodFactory { return NewPeRFlow(cfg, pc, teacher) }, 2)
	p.checkExact(t, 4, func(int) []string { return []string{"perflow"} })
	p.checkAdapters(t, "PeRFlow-LoRA")
}
