package configs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/sampling"
)

// TestColumnConfigResolves: model.text.source column fills embedding_dim from the first
// text_embedding of data.train, prompt_file with data.train and the class names from its metadata;
// the condition width is 1 + embedding_dim; caption as the condition is refused naming the key.
func TestColumnConfigResolves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, err := data.NewWriter(path, []string{data.ColImage, data.ColLabel, data.ColCaption, data.ColTextEmbedding},
		data.WriterOptions{ClassNames: []string{"cat", "dog"}})
	if err != nil {
		t.Fatal(err)
	}
	png, err := sampling.ImagePNG(make([]float32, 4), 2, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := w.Write(data.Row{Image: png, Label: int32(i % 2), HasLabel: true, Caption: []string{"cat", "dog"}[i%2], TextEmbedding: make([]float32, 12)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	yaml := "data:\n  train: " + path + "\n  num_classes: 2\n  condition: text_embedding\nmodel:\n  num_classes: 2\n  text:\n    source: column\n    embedding_tokens: 3\n"
	cfg, resolved, err := Load(writeYAML(t, yaml), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.Model.Text
	if tc.EmbeddingDim != 12 || tc.PromptFile != path || len(tc.ClassNames) != 2 || cfg.Model.CondWidth() != 13 {
		t.Fatalf("resolved text config: %+v, cond width %d", tc, cfg.Model.CondWidth())
	}
	if !strings.Contains(string(resolved), "embedding_dim: 12") {
		t.Fatalf("resolved YAML lacks embedding_dim:\n%s", resolved)
	}
	if _, _, err := Load(writeYAML(t, strings.Replace(yaml, "embedding_tokens: 3", "embedding_tokens: 5", 1)), nil, nil); err == nil || !strings.Contains(err.Error(), "embedding_tokens") {
		t.Fatalf("embedding_tokens 5 of 12 values: err = %v", err)
	}
	if _, _, err := Load(writeYAML(t, strings.Replace(yaml, "condition: text_embedding", "condition: caption", 1)), nil, nil); err == nil || !strings.Contains(err.Error(), "text_embedding") {
		t.Fatalf("column with data.condition caption: err = %v", err)
	}
}
