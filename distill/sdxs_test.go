package distill

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// prunedBlocks of the fixture teacher (levels 1 and 2 of 8 and 16 channels): a channel-changing
// residual block (kept as its 1×1 skip conv), an attention layer and a middle residual block.
var prunedBlocks = []string{"down1/res0", "mid/attn", "mid/res1"}

func testSDXS(t *testing.T, dir string, steps int) (Config, SDXSConfig, trainer.Job) {
	t.Helper()
	cfg, _ := testLADD()
	sc := DefaultSDXSConfig()
	sc.FMTaps, sc.SSIMWindow = []string{"down1", "mid", "up0"}, 7
	sc.SDWeight, sc.SDStart = 0.5, 2
	job := tinyJob(dir, steps)
	job.Model.DropBlocks = prunedBlocks
	job.Data.Train, job.Data.Noise, job.Data.HFlip = pairsFile(t, dir), true, false
	job.Distilled = true
	return cfg, sc, job
}

// pairsFile writes 24 random noise–image pairs (labels 0…9) in the data package's format.
func pairsFile(t *testing.T, dir string) string {
	t.Helper()
	return writePairs(t, filepath.Join(dir, "pairs.parquet"), nil)
}

// writePairs writes the pairs of pairsFile to path; with a vocabulary, each row also carries its
// class's MNIST caption templates in turn and the file that vocabulary.
func writePairs(t *testing.T, path string, vocab []string) string {
	t.Helper()
	cols := []string{data.ColImage, data.ColLabel, data.ColID, data.ColWidth, data.ColHeight, data.ColNoise}
	if vocab != nil {
		cols = append(cols, data.ColCaption)
	}
	w, err := data.NewWriter(path, cols, data.WriterOptions{Vocab: vocab})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	const side = 32
	for i := range 24 {
		img := make([]float32, side*side)
		for j := range img {
			img[j] = float32(rng.Float64()*2 - 1)
		}
		png, err := sampling.ImagePNG(img, side, side, 1)
		if err != nil {
			t.Fatal(err)
		}
		row := data.Row{Image: png, Label: int32(i % 10), HasLabel: true, ID: fmt.Sprint(i), Width: side, Height: side,
			Noise: sampling.NoiseForSeed(uint64(i), side*side)}
		if vocab != nil {
			row.Caption = data.TemplateCaption(data.MNISTCaptions, i%10, i/10)
		}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPruningKeepsListedBlocks: the pruned student holds exactly the teacher's weights outside the
// dropped blocks (plus the dropped residual block's skip conv), each a bit-exact copy; nothing of
// the dropped blocks; and it has fewer parameters.
func TestPruningKeepsListedBlocks(t *testing.T) {
	cfg, sc, job := testSDXS(t, t.TempDir(), 3)
	store := model.NewStore()
	if _, err := NewSDXS(cfg, sc, fixture.teacher)(backendT(t), store, job, false); err != nil {
		t.Fatal(err)
	}
	teacher, student := snapshot(t, store, TeacherScope), snapshot(t, store, trainer.ModelScope)
	kept, skips := 0, 0
	for path, v := range teacher {
		rel := strings.TrimPrefix(path, "/teacher/")
		dropped := false
		for _, b := range prunedBlocks {
			dropped = dropped || strings.HasPrefix(rel, b+"/")
		}
		sv, ok := student["/model/"+rel]
		switch {
		case strings.HasPrefix(rel, "down1/res0/skip/"):
			skips++
			fallthrough
		case !dropped:
			if !ok || !slices.Equal(sv, v) {
				t.Errorf("kept weight %s missing or not copied (present %v)", rel, ok)
			}
			kept++
		case ok:
			t.Errorf("dropped weight %s is in the student", rel)
		}
	}
	if skips == 0 || kept != len(student) || len(student) >= len(teacher) {
		t.Fatalf("student %d tensors (kept %d, skip %d) of the teacher's %d", len(student), kept, skips, len(teacher))
	}
}

// TestSDXSTrainsStudentAndCorrectiveOnly: a run of 4 steps (second stage from step 2) leaves the
// teacher bit-identical, moves the student and the corrective, logs finite terms, and resumes
// exactly from a checkpoint at step 2.
func TestSDXSTrainsStudentAndCorrectiveOnly(t *testing.T) {
	dir := t.TempDir()
	cfg, sc, _ := testSDXS(t, dir, 4)
	p := straightAndResumed(t, func(sub string) trainer.Job {
		_, _, job := testSDXS(t, dir, 4)
		job.RunDir = checkpoints.RunDir(sub)
		return job
	}, func() trainer.MethodFactory { return NewSDXS(cfg, sc, fixture.teacher) }, 2)
	p.checkExact(t, 4, func(step int) []string {
		if step > 2 { // the second stage (and the corrective's updates) start at step index 2
			return []string{"ssim", "mse", "fm", "sd", "c_loss"}
		}
		return []string{"ssim", "mse", "fm", "sd"}
	})
	moved := p.movedFromTeacher(t, "teacher/", "model/", "disc/corrective/")
	if moved["teacher/"] != 0 || moved["model/"] == 0 || moved["disc/corrective/"] == 0 {
		t.Fatalf("tensors that moved from the teacher's weights: %v (want teacher 0, student and corrective > 0)", moved)
	}
}

// TestSDXSWarmupLossFalls: on one fixed batch of pairs, 30 warm-up updates (SSIM + feature
// matching) of the pruned student lower its loss by at least a third.
func TestSDXSWarmupLossFalls(t *testing.T) {
	cfg, sc, job := testSDXS(t, t.TempDir(), 400)
	sc.SDWeight = 0
	job.Trainer.LR = 3e-3
	m, err := NewSDXS(cfg, sc, fixture.teacher)(backendT(t), model.NewStore(), job, false)
	if err != nil {
		t.Fatal(err)
	}
	s := m.(*SDXS)
	rng := rand.New(rand.NewPCG(5, 5))
	b := fakeBatch(rng, 8)
	b.Noise = slices.Clone(b.Eps)
	l := stepLosses(t, 30, func(i int) (trainer.StepResult, error) {
		return s.gStep.RunInputs(i, s.inputs(i, b, rand.New(rand.NewPCG(1, 1)))...)
	})
	first, last := l[0], l[len(l)-1]
	t.Logf("warm-up loss %.4f -> %.4f", first, last)
	if !(last < first*2/3) {
		t.Fatalf("warm-up loss %g -> %g, want a fall of a third", first, last)
	}
}
