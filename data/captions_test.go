package data

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// captionDatasets are the datasets with caption templates.
var captionDatasets = []struct {
	name       string
	classNames []string
	templates  func(int) []string
}{
	{"mnist", MNISTClassNames, MNISTCaptions},
	{"fashion-mnist", FashionMNISTClassNames, FashionMNISTCaptions},
}

func TestCaptionTemplatesGolden(t *testing.T) {
	if got, want := MNISTCaptions(7), []string{"a handwritten seven", "the digit 7", "seven", "a handwritten digit seven", "number 7"}; !slices.Equal(got, want) {
		t.Errorf("MNISTCaptions(7) = %q, want %q", got, want)
	}
	if got, want := FashionMNISTCaptions(9), []string{"a photo of an ankle boot", "ankle boot", "a grayscale photo of an ankle boot", "an ankle boot", "a product photo of an ankle boot"}; !slices.Equal(got, want) {
		t.Errorf("FashionMNISTCaptions(9) = %q, want %q", got, want)
	}
	if got := FashionMNISTCaptions(0)[0]; got != "a photo of a t-shirt or top" {
		t.Errorf("FashionMNISTCaptions(0)[0] = %q", got)
	}
	// Every class name tokenizes exactly as one of its class's templates (prompting by name).
	for l, name := range FashionMNISTClassNames {
		found := false
		for _, tpl := range FashionMNISTCaptions(l) {
			found = found || slices.Equal(Tokenize(tpl), Tokenize(name))
		}
		if !found {
			t.Errorf("class name %q is none of its templates %q", name, FashionMNISTCaptions(l))
		}
	}
	for _, l := range []int{-1, 10} {
		if MNISTCaptions(l) != nil || FashionMNISTCaptions(l) != nil {
			t.Errorf("label %d: templates for a label out of range", l)
		}
	}
}

// TestCaptionTemplatesWellFormed: every class has 4–5 non-empty, lowercase templates, distinct
// under Tokenize within the class and from every other class's templates and names; "a"
// precedes a consonant, "an" a vowel; MNIST templates use the digit's word and numeral.
func TestCaptionTemplatesWellFormed(t *testing.T) {
	for _, ds := range captionDatasets {
		owner := map[string]int{} // tokenized template or class name → class
		for c, name := range ds.classNames {
			ts := ds.templates(c)
			if len(ts) < 4 || len(ts) > 5 {
				t.Errorf("%s class %d: %d templates, want 4–5", ds.name, c, len(ts))
			}
			keys := map[string]bool{strings.Join(Tokenize(name), " "): true}
			for i, s := range ts {
				key := strings.Join(Tokenize(s), " ")
				if key == "" || slices.ContainsFunc(ts[:i], func(p string) bool { return strings.Join(Tokenize(p), " ") == key }) {
					t.Errorf("%s class %d: template %q is empty or repeated", ds.name, c, s)
				}
				keys[key] = true
			}
			for key := range keys {
				if o, dup := owner[key]; dup {
					t.Errorf("%s: %q is a template or name of classes %d and %d", ds.name, key, o, c)
				}
				owner[key] = c
			}
			for _, s := range ts {
				if s != strings.ToLower(s) || strings.TrimSpace(s) != s {
					t.Errorf("%s class %d: template %q is not trimmed lowercase", ds.name, c, s)
				}
				checkArticles(t, s)
			}
			if ds.name == "mnist" {
				all := strings.Join(ts, " ")
				if !strings.Contains(all, name) || !strings.Contains(all, fmt.Sprint(c)) {
					t.Errorf("mnist class %d: templates %q lack %q or %d", c, ts, name, c)
				}
			}
		}
	}
}

// checkArticles checks a/an against the first letter of the next word.
func checkArticles(t *testing.T, s string) {
	t.Helper()
	words := strings.Fields(s)
	for i, w := range words[:len(words)-1] {
		vowel := strings.ContainsRune("aeiou", unicode.ToLower([]rune(words[i+1])[0]))
		if w == "a" && vowel || w == "an" && !vowel {
			t.Errorf("template %q: %q before %q", s, w, words[i+1])
		}
	}
}

func TestCaptionTemplatesLookup(t *testing.T) {
	for _, ds := range captionDatasets {
		byName, ok := CaptionTemplates(ds.name)
		byClasses, ok2 := CaptionTemplatesOf(slices.Clone(ds.classNames))
		if !ok || !ok2 || !slices.Equal(byName(3), ds.templates(3)) || !slices.Equal(byClasses(3), ds.templates(3)) {
			t.Errorf("%s: lookup by name (%v) or class names (%v) failed", ds.name, ok, ok2)
		}
	}
	if _, ok := CaptionTemplates("emoji"); ok {
		t.Error("CaptionTemplates(emoji) has templates")
	}
	if _, ok := CaptionTemplatesOf([]string{"People & Body"}); ok {
		t.Error("CaptionTemplatesOf(emoji categories) has templates")
	}
}

func TestTemplateCaptionCycles(t *testing.T) {
	want := []string{"a handwritten three", "the digit 3", "three", "a handwritten digit three", "number 3", "a handwritten three"}
	for row, w := range want {
		if got := TemplateCaption(MNISTCaptions, 3, row); got != w {
			t.Errorf("row %d: %q, want %q", row, got, w)
		}
	}
	if got := TemplateCaption(MNISTCaptions, 11, 0); got != "" {
		t.Errorf("label without templates: %q", got)
	}
	if got := TemplateCaptions(10, MNISTCaptions); len(got) != 50 || got[35] != "a handwritten seven" {
		t.Errorf("TemplateCaptions: %d captions, [35] = %q", len(got), got[35])
	}
}

func TestClassOfPrompt(t *testing.T) {
	for _, ds := range captionDatasets {
		for c, name := range ds.classNames {
			for _, p := range append([]string{name, strings.ToUpper(name)}, ds.templates(c)...) {
				for _, variant := range []string{p, "  " + strings.ToUpper(p) + "!", strings.ReplaceAll(p, " ", "_")} {
					if got, ok := ClassOfPrompt(ds.classNames, ds.templates, variant); !ok || got != c {
						t.Errorf("%s: ClassOfPrompt(%q) = %d, %v, want %d", ds.name, variant, got, ok, c)
					}
				}
			}
		}
	}
	for _, p := range []string{"a red car", "", " ,. ", "the digit 7 in blue", "digit", "a handwritten", "77"} {
		if got, ok := ClassOfPrompt(MNISTClassNames, MNISTCaptions, p); ok || got != -1 {
			t.Errorf("ClassOfPrompt(%q) = %d, %v, want rejected", p, got, ok)
		}
	}
	if got, ok := ClassOfPrompt(FashionMNISTClassNames, FashionMNISTCaptions, "T-shirt/top"); !ok || got != 0 {
		t.Errorf("class name with punctuation: %d, %v", got, ok)
	}
	if got, ok := ClassOfPrompt(FashionMNISTClassNames, FashionMNISTCaptions, "A T shirt or top"); !ok || got != 0 {
		t.Errorf("template with punctuation dropped: %d, %v", got, ok)
	}
	if _, ok := ClassOfPrompt(MNISTClassNames, nil, "the digit 7"); ok {
		t.Error("nil templates: a template matched")
	}
	if got, ok := ClassOfPrompt(MNISTClassNames, nil, "Seven"); !ok || got != 7 {
		t.Errorf("nil templates, class name: %d, %v", got, ok)
	}
	if got, ok := ClassOfPrompt([]string{"cat", "dog", "Cat"}, nil, "cat"); ok || got != -1 {
		t.Errorf("ambiguous prompt: %d, %v, want rejected", got, ok)
	}
}

// TestImportIDXCaptions: imported rows cycle through their class's templates by row index,
// the same on every import, and every template token (so every caption) is in the vocabulary.
func TestImportIDXCaptions(t *testing.T) {
	f := writeMNISTFixture(t, "train", 23, true)
	for _, ds := range captionDatasets {
		var first []string
		for range 2 {
			out := filepath.Join(t.TempDir(), ds.name+".parquet")
			var err error
			if ds.name == "mnist" {
				_, _, err = ImportMNISTWithOptions(f.dir, "train", out, WriterOptions{RowGroupRows: 8})
			} else {
				_, _, err = ImportFashionMNIST(f.dir, "train", out, WriterOptions{RowGroupRows: 8})
			}
			if err != nil {
				t.Fatal(err)
			}
			r := wtRead(t, out)
			captions := r.strings(t, ColCaption)
			var vocab []string
			if err := json.Unmarshal([]byte(r.md[MetaVocab]), &vocab); err != nil {
				t.Fatal(err)
			}
			checkVocabCovers(t, vocab, TemplateCaptions(len(ds.classNames), ds.templates))
			checkVocabCovers(t, vocab, ds.classNames)
			for i, c := range captions {
				l := int(f.labels[i])
				if want := ds.templates(l)[i%len(ds.templates(l))]; c != want {
					t.Errorf("%s row %d (label %d): caption %q, want template %d %q", ds.name, i, l, c, i%5, want)
				}
				if got, ok := ClassOfPrompt(ds.classNames, ds.templates, c); !ok || got != l {
					t.Errorf("%s row %d: caption %q maps to class %d, %v, want %d", ds.name, i, c, got, ok, l)
				}
			}
			if first == nil {
				first = captions
			} else if !slices.Equal(first, captions) {
				t.Errorf("%s: captions differ between two imports", ds.name)
			}
		}
	}
}

// checkVocabCovers fails when a token of captions is not in vocab.
func checkVocabCovers(t *testing.T, vocab, captions []string) {
	t.Helper()
	enc := NewEncoder(vocab)
	for _, c := range captions {
		if ids := enc.Encode(c, 0); slices.Contains(ids, UnkID) {
			t.Errorf("caption %q has a token outside the vocabulary: ids %v", c, ids)
		}
	}
}
