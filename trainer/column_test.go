package trainer

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
)

// columnClasses are the class names (and one caption each) of embeddingFixture.
var columnClasses = []string{"zero", "one", "two", "three"}

// embeddingFixture writes n 16×16 rows of four classes (a bright square at a class-dependent
// place) with precomputed text embeddings of dim values: caption "zero"… or "a zero"…, and an
// embedding that depends on the caption (as a user's own encoder would give).
func embeddingFixture(t *testing.T, n, dim int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, err := data.NewWriter(path, []string{data.ColImage, data.ColLabel, data.ColCaption, data.ColTextEmbedding, data.ColWidth, data.ColHeight},
		data.WriterOptions{ClassNames: columnClasses})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := i % len(columnClasses)
		img := make([]float32, 16*16)
		for j := range img {
			y, x := j/16, j%16
			img[j] = -1
			if y/8 == k/2 && x/8 == k%2 {
				img[j] = 0.8
			}
		}
		png, err := sampling.ImagePNG(img, 16, 16, 1)
		if err != nil {
			t.Fatal(err)
		}
		caption := columnClasses[k]
		variant := (i / len(columnClasses)) % 2
		if variant == 1 {
			caption = "a " + caption
		}
		emb := make([]float32, dim)
		for j := range emb {
			emb[j] = float32(math.Sin(float64(1+k*dim+j)*0.7) + 0.1*float64(variant))
		}
		if err := w.Write(data.Row{Image: png, Label: int32(k), HasLabel: true, Caption: caption, TextEmbedding: emb, Width: 16, Height: 16}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// tinyColumnJob is tinyJob conditioned on precomputed embeddings (model.text.source column).
func tinyColumnJob(t *testing.T, dir, train string, steps int) Job {
	t.Helper()
	job := tinyJob(t, dir, steps)
	job.Data.Train = train
	job.Data.ImageSize = 16
	job.Data.Condition = data.ConditionTextEmbedding
	job.Model.NumClasses = len(columnClasses)
	job.Model.Text = models.TextConfig{Source: models.TextColumn, Layers: 1, Width: 16, Heads: 2, MaxTokens: 6, EmbeddingDim: 6,
		EmbeddingTokens: 2, PromptFile: train, ClassNames: columnClasses, CrossAttentionResolutions: []int{8}, MidCross: true}
	job.Trainer.CondDropout = 0.2
	return job
}

// TestColumnResumeIsExact: a run on precomputed text embeddings (source column, 6 values read as
// 2 tokens) resumed at step 6 of 12 equals the straight run exactly; its checkpoint holds the
// projection of the embeddings, its grid is prompted by class name through the caption →
// embedding table, and a wrong embedding_dim is refused naming the file.
func TestColumnResumeIsExact(t *testing.T) {
	train := embeddingFixture(t, 96, 6)
	straight := tinyColumnJob(t, t.TempDir(), train, 12)
	straight.Trainer.SampleEvery = 12
	res := mustTrain(t, straight, Options{})
	if _, err := os.Stat(res.Grid); err != nil {
		t.Fatalf("sample grid: %v", err)
	}
	split := tinyColumnJob(t, t.TempDir(), train, 12)
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
	projected := false
	for name, a := range ta {
		projected = projected || strings.Contains(name, "/text/project/")
		if !slices.Equal(tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](tb[name])) {
			t.Errorf("tensor %s differs after resume", name)
		}
	}
	if !projected {
		t.Fatal("checkpoint has no text/project tensors")
	}

	bad := tinyColumnJob(t, t.TempDir(), train, 2)
	bad.Model.Text.EmbeddingDim = 4
	bad.Model.Text.EmbeddingTokens = 1
	if _, err := Train(context.Background(), testBackend(t), bad, Options{}); err == nil || !strings.Contains(err.Error(), train) || !strings.Contains(err.Error(), "embedding_dim is 4") {
		t.Fatalf("embedding_dim 4 on 6-value embeddings: err = %v", err)
	}
}

// TestFillCondEmbedding: FillCond writes the class (null without with_class) then the embedding
// in fixed point; DropCond zeroes the embedding (the null condition); an out-of-range value is
// refused naming the example.
func TestFillCondEmbedding(t *testing.T) {
	mc := models.DefaultConfig()
	mc.NumClasses = 4
	mc.Text = models.TextConfig{Source: models.TextColumn, EmbeddingDim: 2, EmbeddingTokens: 1}
	b := &Batch{B: 2, CondWidth: 3, Cond: make([]int32, 6)}
	d := &data.Batch{Labels: []int32{1, 2}, TextEmbedding: []float32{0.5, -0.25, 1, 3}, EmbeddingDim: 2}
	if err := FillCond(b, d, mc, data.ConditionTextEmbedding); err != nil {
		t.Fatal(err)
	}
	const s = models.EmbeddingScale
	if want := []int32{4, s / 2, -s / 4, 4, s, 3 * s}; !slices.Equal(b.Cond, want) {
		t.Fatalf("Cond = %v, want %v", b.Cond, want)
	}
	DropCond(b, 1, 4)
	if want := []int32{4, s / 2, -s / 4, 4, 0, 0}; !slices.Equal(b.Cond, want) {
		t.Fatalf("after DropCond: %v, want %v", b.Cond, want)
	}
	d.TextEmbedding[3] = 5000
	if err := FillCond(b, d, mc, data.ConditionTextEmbedding); err == nil || !strings.Contains(err.Error(), "example 1") {
		t.Fatalf("embedding value 5000: err = %v", err)
	}
}
