package sampling

import (
	"fmt"
	"slices"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// PromptCond builds the condition rows of a text model (models.Config.Text on) for prompts:
// row i is the class labels[i] under model.text.with_class (the null class when labels is nil, for
// labels[i] < 0, or without with_class) and prompts[i]'s token ids
// under the model's vocabulary (data.Tokenize; padded or truncated to model.text.max_tokens).
// Unknown returns the prompt words outside the vocabulary (they become <unk>), each once, in order.
// Result: [N, 1+max_tokens] flattened, for Sampler.Sample.
func PromptCond(mc models.Config, prompts []string, labels []int32) (cond []int32, unknown []string, err error) {
	if !mc.Text.On() {
		return nil, nil, fmt.Errorf("prompts: this model is class-conditional (model.text.source %q); use -class", mc.Text.Source)
	}
	if labels != nil && len(labels) != len(prompts) {
		return nil, nil, fmt.Errorf("prompts: %d prompts but %d labels", len(prompts), len(labels))
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
