package data

import (
	"cmp"
	"slices"
	"strings"
	"unicode"
)

const (
	// DefaultVocabSize caps the vocabulary BuildVocab returns when asked for size 0.
	DefaultVocabSize = 4096
	// PadToken (id 0) pads token sequences; UnkToken (id 1) stands for out-of-vocabulary tokens.
	PadToken = "<pad>"
	UnkToken = "<unk>"
	// PadID and UnkID are the ids of PadToken and UnkToken.
	PadID int32 = 0
	UnkID int32 = 1
)

// Tokenize splits text into lowercase tokens: maximal runs of letters and decimal digits
// (unicode.IsLetter, unicode.IsDigit); every other rune separates tokens. "Ankle boot" → [ankle boot],
// "T-shirt/top" → [t shirt top].
func Tokenize(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// BuildVocab returns the caption vocabulary: PadToken, UnkToken, then the tokens of captions
// (see Tokenize) ordered by count descending, ties by token ascending, at most maxSize
// entries in all (maxSize <= 0: DefaultVocabSize; at least the two special tokens).
// The result is deterministic: it does not depend on the order of captions.
func BuildVocab(captions []string, maxSize int) []string {
	if maxSize <= 0 {
		maxSize = DefaultVocabSize
	}
	counts := map[string]int{}
	for _, c := range captions {
		for _, tok := range Tokenize(c) {
			counts[tok]++
		}
	}
	tokens := make([]string, 0, len(counts))
	for tok := range counts {
		tokens = append(tokens, tok)
	}
	slices.SortFunc(tokens, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	vocab := append([]string{PadToken, UnkToken}, tokens...)
	return vocab[:max(2, min(len(vocab), maxSize))]
}

// Encode returns the token ids of text under vocab (index = id): unknown tokens map to
// UnkID; with maxTokens > 0 the ids are truncated or padded with PadID to exactly
// maxTokens, else all tokens are returned. Shape: [maxTokens] (or [len(Tokenize(text))]).
// For many captions, NewEncoder avoids rebuilding the token index per call.
func Encode(vocab []string, text string, maxTokens int) []int32 {
	return NewEncoder(vocab).Encode(text, maxTokens)
}

// Encoder maps caption text to token ids with a fixed vocabulary.
type Encoder struct{ index map[string]int32 }

// NewEncoder indexes vocab (see BuildVocab). Entries 0 and 1 are the special tokens and
// never match a caption token (Tokenize never produces "<" or ">").
func NewEncoder(vocab []string) *Encoder {
	e := &Encoder{index: make(map[string]int32, len(vocab))}
	for i, tok := range vocab {
		if _, dup := e.index[tok]; !dup {
			e.index[tok] = int32(i)
		}
	}
	return e
}

// Encode is the package-level Encode with e's vocabulary.
func (e *Encoder) Encode(text string, maxTokens int) []int32 {
	tokens := Tokenize(text)
	n := len(tokens)
	if maxTokens > 0 {
		n = maxTokens
	}
	ids := make([]int32, n) // zero = PadID
	for i, tok := range tokens {
		if i >= n {
			break
		}
		id, ok := e.index[tok]
		if !ok {
			id = UnkID
		}
		ids[i] = id
	}
	return ids
}
