package sampling

import (
	"fmt"
	"slices"
	"sync"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// PromptCond builds the condition rows of a text model (models.Config.Text on) for prompts:
// row i is the class labels[i] under model.text.with_class (the null class when labels is nil, for
// labels[i] < 0, or without with_class) and prompts[i]'s token ids
// under the model's vocabulary (data.Tokenize; padded or truncated to model.text.max_tokens).
// Unknown returns the prompt words outside the vocabulary (they become <unk>), each once, in order.
// Result: [N, 1+max_tokens] flattened, for Sampler.Sample.
//
// Under model.text.source column a prompt is looked up by its caption among the precomputed
// embeddings of model.text.prompt_file (data.ReadPromptEmbeddings): row i is the class, then the
// embedding in fixed point (models.EncodeEmbedding), [N, 1+embedding_dim]; a prompt without a
// row is an error naming it.
func PromptCond(mc models.Config, prompts []string, labels []int32) (cond []int32, unknown []string, err error) {
	if !mc.Text.On() {
		return nil, nil, fmt.Errorf("prompts: this model is class-conditional (model.text.source %q); use -class", mc.Text.Source)
	}
	if labels != nil && len(labels) != len(prompts) {
		return nil, nil, fmt.Errorf("prompts: %d prompts but %d labels", len(prompts), len(labels))
	}
	if mc.Text.Column() {
		cond, err = embeddingCond(mc, prompts, labels)
		return cond, nil, err
	}
	enc := data.NewEncoder(mc.Text.Vocab)
	known := map[string]bool{}
	for _, tok := range mc.Text.Vocab {
		known[tok] = true
	}
	tokens := make([][]int32, len(prompts))
	cls := make([]int32, len(prompts))
	for i, p := range prompts {
		tokens[i] = enc.Encode(p, mc.Text.MaxTokens)
		cls[i] = int32(mc.NumClasses)
		if mc.Text.WithClass && labels != nil && labels[i] >= 0 {
			cls[i] = labels[i]
		}
		for _, w := range data.Tokenize(p) {
			if !known[w] && !slices.Contains(unknown, w) {
				unknown = append(unknown, w)
			}
		}
	}
	return TextCond(cls, tokens, mc.Text.MaxTokens), unknown, nil
}

// promptTables caches the prompt → embedding tables of model.text.prompt_file, by file list.
var promptTables sync.Map // string → *data.PromptEmbeddings

// PromptEmbeddings returns the (cached) prompt table of a model.text.source column model.
func PromptEmbeddings(mc models.Config) (*data.PromptEmbeddings, error) {
	if !mc.Text.Column() {
		return nil, fmt.Errorf("prompt embeddings: model.text.source is %q, not column", mc.Text.Source)
	}
	if mc.Text.PromptFile == "" {
		return nil, fmt.Errorf("model.text.prompt_file: empty: name the Parquet files whose caption and text_embedding columns map prompts to embeddings")
	}
	if t, ok := promptTables.Load(mc.Text.PromptFile); ok {
		return t.(*data.PromptEmbeddings), nil
	}
	t, err := data.ReadPromptEmbeddings(mc.Text.PromptFile)
	if err != nil {
		return nil, fmt.Errorf("model.text.prompt_file: %w", err)
	}
	if t.Dim != mc.Text.EmbeddingDim {
		return nil, fmt.Errorf("model.text.prompt_file %s: text_embedding has %d values, model.text.embedding_dim is %d", mc.Text.PromptFile, t.Dim, mc.Text.EmbeddingDim)
	}
	promptTables.Store(mc.Text.PromptFile, t)
	return t, nil
}

// embeddingCond is PromptCond for model.text.source column.
func embeddingCond(mc models.Config, prompts []string, labels []int32) ([]int32, error) {
	t, err := PromptEmbeddings(mc)
	if err != nil {
		return nil, err
	}
	w := 1 + mc.Text.EmbeddingDim
	out := make([]int32, len(prompts)*w)
	for i, p := range prompts {
		row := out[i*w : (i+1)*w]
		row[0] = int32(mc.NumClasses)
		if mc.Text.WithClass && labels != nil && labels[i] >= 0 {
			row[0] = labels[i]
		}
		if p == "" { // the empty prompt: the null condition, the zero embedding
			continue
		}
		e, err := t.Lookup(p)
		if err != nil {
			return nil, err
		}
		if err := models.EncodeEmbedding(row[1:], e); err != nil {
			return nil, fmt.Errorf("prompt %q: %w", p, err)
		}
	}
	return out, nil
}
