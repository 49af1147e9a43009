package sampling

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// TestPromptCondColumn: a model on precomputed embeddings (model.text.source column) looks prompts
// up by caption in model.text.prompt_file, case and punctuation aside; the empty prompt is the
// zero embedding (the null condition); a prompt without a row is refused naming it and the file;
// with_class puts the label in column 0.
func TestPromptCondColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, err := data.NewWriter(path, []string{data.ColImage, data.ColCaption, data.ColTextEmbedding}, data.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	png, err := ImagePNG(make([]float32, 4), 2, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		caption string
		emb     []float32
	}{{"a red cat", []float32{0.5, -2}}, {"blue dog", []float32{1, 0.25}}, {"A red cat", []float32{9, 9}}} {
		if err := w.Write(data.Row{Image: png, Caption: r.caption, TextEmbedding: r.emb}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mc := models.DefaultConfig()
	mc.NumClasses = 3
	mc.Text = models.TextConfig{Source: models.TextColumn, EmbeddingDim: 2, EmbeddingTokens: 1, PromptFile: path}
	const s = models.EmbeddingScale
	cond, _, err := PromptCond(mc, []string{"A red cat!", "", "blue  dog"}, []int32{1, 2, 0})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{3, s / 2, -2 * s, 3, 0, 0, 3, s, s / 4}; !slices.Equal(cond, want) {
		t.Fatalf("cond = %v, want %v", cond, want)
	}
	mc.Text.WithClass = true
	if cond, _, err = PromptCond(mc, []string{"blue dog"}, []int32{2}); err != nil || cond[0] != 2 {
		t.Fatalf("with_class: cond %v, err %v", cond, err)
	}
	if _, _, err = PromptCond(mc, []string{"green bird"}, nil); err == nil || !strings.Contains(err.Error(), `"green bird"`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("unknown prompt: err = %v", err)
	}
	mc.Text.EmbeddingDim = 3
	mc.Text.PromptFile = path + "," + path // another cache key
	if _, _, err = PromptCond(mc, []string{"blue dog"}, nil); err == nil || !strings.Contains(err.Error(), "embedding_dim is 3") {
		t.Fatalf("embedding_dim 3 on 2-value embeddings: err = %v", err)
	}
}
