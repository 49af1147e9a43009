package data

import (
	"slices"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"", nil},
		{"  ,;  ", nil},
		{"Ankle boot", []string{"ankle", "boot"}},
		{"T-shirt/top", []string{"t", "shirt", "top"}},
		{"grinning face, smileys & emotion", []string{"grinning", "face", "smileys", "emotion"}},
		{"Größe 42cm, ÉTÉ", []string{"größe", "42cm", "été"}},
		{"<pad> <unk>", []string{"pad", "unk"}},
		{"keycap: 1️⃣ x²", []string{"keycap", "1", "x"}}, // VS16, the keycap mark and ² separate
		{"日本 語", []string{"日本", "語"}},
	} {
		if got := Tokenize(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestBuildVocab(t *testing.T) {
	captions := []string{"a red cat", "A blue cat", "red dog", "cat"}
	for _, tc := range []struct {
		max  int
		want string
	}{
		{0, "<pad> <unk> cat a red blue dog"}, // cat 3, a 2, red 2, blue 1, dog 1: count desc, then token asc
		{4, "<pad> <unk> cat a"},
		{2, "<pad> <unk>"},
		{1, "<pad> <unk>"},
		{100, "<pad> <unk> cat a red blue dog"},
	} {
		if got := strings.Join(BuildVocab(captions, tc.max), " "); got != tc.want {
			t.Errorf("BuildVocab(max %d) = %q, want %q", tc.max, got, tc.want)
		}
	}
	reversed := slices.Clone(captions)
	slices.Reverse(reversed)
	if !slices.Equal(BuildVocab(captions, 0), BuildVocab(reversed, 0)) {
		t.Error("BuildVocab depends on the caption order")
	}
	if got := BuildVocab(nil, 0); !slices.Equal(got, []string{PadToken, UnkToken}) {
		t.Errorf("BuildVocab(nil) = %q", got)
	}
	many := make([]string, 5000)
	for i := range many {
		many[i] = "w" + strings.Repeat("x", i%4500)
	}
	if got := len(BuildVocab(many, 0)); got != DefaultVocabSize {
		t.Errorf("default cap: %d tokens, want %d", got, DefaultVocabSize)
	}
}

func TestEncode(t *testing.T) {
	vocab := []string{PadToken, UnkToken, "cat", "a", "red"}
	for _, tc := range []struct {
		text string
		max  int
		want []int32
	}{
		{"a red cat", 5, []int32{3, 4, 2, 0, 0}},
		{"A RED DOG!", 3, []int32{3, 4, 1}},
		{"a red cat cat", 2, []int32{3, 4}},
		{"", 3, []int32{0, 0, 0}},
		{"cat dog", 0, []int32{2, 1}},
		{"<pad> <unk>", 0, []int32{1, 1}}, // caption text never yields the special tokens
	} {
		if got := Encode(vocab, tc.text, tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q, %d) = %v, want %v", tc.text, tc.max, got, tc.want)
		}
	}
	if got := Encode(nil, "x", 2); !slices.Equal(got, []int32{UnkID, PadID}) {
		t.Errorf("Encode with no vocabulary = %v", got)
	}
}
