package trainer

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// tinyTextJob is tinyJob conditioned on the captions (model.text on, caption only).
func tinyTextJob(t *testing.T, dir string, steps int) Job {
	t.Helper()
	job := tinyJob(t, dir, steps)
	vocab, err := data.ReadVocab(job.Data.Train)
	if err != nil {
		t.Fatal(err)
	}
	job.Data.Condition = data.ConditionCaption
	job.Data.MaxTokens = 6
	job.Model.Text = models.TextConfig{Source: models.TextLearned, Layers: 1, Width: 16, Heads: 2, MaxTokens: 6, Vocab: vocab,
		CrossAttentionResolutions: []int{8}, MidCross: true}
	job.Trainer.CondDropout = 0.2
	return job
}

// TestTextResumeIsExact: a caption-conditioned run (text encoder and cross-attention trained
// jointly) resumed at step 6 of 12 gives the straight run's losses and tensors exactly; the
// checkpoint holds the text encoder's weights and the sample grid (one row per class name) is written.
func TestTextResumeIsExact(t *testing.T) {
	straight := tinyTextJob(t, t.TempDir(), 12)
	straight.Trainer.SampleEvery = 12
	res := mustTrain(t, straight, Options{})
	if _, err := os.Stat(res.Grid); err != nil {
		t.Fatalf("sample grid: %v", err)
	}
	split := tinyTextJob(t, t.TempDir(), 12)
	mustTrain(t, split, Options{StopAt: 6})
	mustTrain(t, split, Options{Resume: true})
	la, lb := lossSeq(t, straight.RunDir), lossSeq(t, split.RunDir)
	if len(la) != 12 || !slices.Equal(la, lb) {
		t.Fatalf("loss sequences differ:\nstraight %v\nresumed  %v", la, lb)
	}
	_, ta, _, err := checkpoints.LoadLatest(straight.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	_, tb, _, err := checkpoints.LoadLatest(split.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	textVars := 0
	for name, a := range ta {
		if strings.Contains(name, "/text/") || strings.Contains(name, "/cross") {
			textVars++
		}
		if !slices.Equal(tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](tb[name])) {
			t.Errorf("tensor %s differs after resume", name)
		}
	}
	if textVars == 0 {
		t.Fatal("checkpoint has no text-encoder or cross-attention tensors")
	}
}
