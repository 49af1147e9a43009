package data

import (
	"slices"
	"strings"
)

// Caption templates of the class-labelled datasets (MNIST, Fashion-MNIST): several phrasings
// per class, so that a caption-conditioned model learns the class from varied text and eval
// can prompt with any of them. Row i of an imported split gets template i mod
// len(templates(label)) (TemplateCaption); the class names (MetaClassNames) stay the short
// names of MNISTClassNames and FashionMNISTClassNames.

// mnistNumerals are the digits as numerals, indexed by label.
var mnistNumerals = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// MNISTCaptions returns the caption templates of MNIST class label (0…9), five distinct
// lowercase phrasings with the digit's word and numeral; for 7: "a handwritten seven",
// "the digit 7", "seven", "a handwritten digit seven", "number 7". It returns nil for a
// label out of range.
func MNISTCaptions(label int) []string {
	if label < 0 || label >= len(MNISTClassNames) {
		return nil
	}
	word, numeral := MNISTClassNames[label], mnistNumerals[label]
	return []string{
		"a handwritten " + word,
		"the digit " + numeral,
		word,
		"a handwritten digit " + word,
		"number " + numeral,
	}
}

// fashionNouns are the Fashion-MNIST classes as readable lowercase noun phrases, bare and
// with their indefinite article ("an ankle boot"), indexed by label. The bare phrase tokenizes
// like the class name (FashionMNISTClassNames), so prompting with the name is a template: a
// first import wrote "trousers" for "Trouser", and a teacher trained on it read the name
// "Trouser" as <unk> and drew upper-body garments (part 13's Fashion measurement).
var fashionNouns = []struct{ bare, indefinite string }{
	{"t-shirt/top", "a t-shirt or top"},
	{"trouser", "a pair of trousers"},
	{"pullover", "a pullover"},
	{"dress", "a dress"},
	{"coat", "a coat"},
	{"sandal", "a sandal"},
	{"shirt", "a shirt"},
	{"sneaker", "a sneaker"},
	{"bag", "a bag"},
	{"ankle boot", "an ankle boot"},
}

// FashionMNISTCaptions returns the caption templates of Fashion-MNIST class label (0…9),
// five distinct lowercase phrasings; for 9 (class name "Ankle boot"): "a photo of an ankle
// boot", "ankle boot", "a grayscale photo of an ankle boot", "an ankle boot", "a product
// photo of an ankle boot". "T-shirt/top" is also "a t-shirt or top", "Trouser" "a pair of
// trousers". It returns nil for a label out of range.
func FashionMNISTCaptions(label int) []string {
	if label < 0 || label >= len(fashionNouns) {
		return nil
	}
	n := fashionNouns[label]
	return []string{
		"a photo of " + n.indefinite,
		n.bare,
		"a grayscale photo of " + n.indefinite,
		n.indefinite,
		"a product photo of " + n.indefinite,
	}
}

// CaptionTemplates returns the caption templates of a dataset by its importer name:
// "mnist" (MNISTCaptions) or "fashion-mnist" (FashionMNISTCaptions); ok is false for any
// other name (emoji and folder datasets carry their own captions).
func CaptionTemplates(dataset string) (templates func(label int) []string, ok bool) {
	switch dataset {
	case mnistDataset.idPrefix:
		return MNISTCaptions, true
	case fashionMNISTDataset.idPrefix:
		return FashionMNISTCaptions, true
	}
	return nil, false
}

// CaptionTemplatesOf returns the caption templates of the dataset whose class names
// (a file's MetaClassNames, Dataset.ClassNames) are classNames: MNISTClassNames or
// FashionMNISTClassNames; ok is false for any other list.
func CaptionTemplatesOf(classNames []string) (templates func(label int) []string, ok bool) {
	switch {
	case slices.Equal(classNames, MNISTClassNames):
		return MNISTCaptions, true
	case slices.Equal(classNames, FashionMNISTClassNames):
		return FashionMNISTCaptions, true
	}
	return nil, false
}

// TemplateCaption returns the caption of row (0-based, within its split) of class label:
// templates(label)[row mod len(templates(label))], so consecutive rows of a class cycle
// through its templates. It returns "" when label has no templates.
func TemplateCaption(templates func(label int) []string, label, row int) string {
	ts := templates(label)
	if len(ts) == 0 {
		return ""
	}
	return ts[row%len(ts)]
}

// TemplateCaptions returns every template of classes 0…numClasses-1, class by class — the
// captions an importer builds its vocabulary from (BuildVocab), so that every template
// token has an id.
func TemplateCaptions(numClasses int, templates func(label int) []string) []string {
	var all []string
	for label := range numClasses {
		all = append(all, templates(label)...)
	}
	return all
}

// ClassOfPrompt returns the class whose name (classNames[c]) or one of whose templates
// (templates(c); templates may be nil) equals prompt token for token under Tokenize — so
// case, punctuation and spacing do not matter: "The digit 7." and "THE DIGIT 7" are class 7
// of MNIST, "t-shirt/top" and "T-shirt or top" class 0 of Fashion-MNIST. ok is false when
// no class matches, when the prompt has no tokens, or when it matches more than one class
// (the result is never a guess). Any other prompt ("a red car", "the digit 7 in blue") is
// rejected: this is exact matching, not classification.
func ClassOfPrompt(classNames []string, templates func(label int) []string, prompt string) (class int, ok bool) {
	want := strings.Join(Tokenize(prompt), " ")
	if want == "" {
		return -1, false
	}
	class = -1
	for c, name := range classNames {
		candidates := []string{name}
		if templates != nil {
			candidates = append(candidates, templates(c)...)
		}
		if !slices.ContainsFunc(candidates, func(s string) bool { return strings.Join(Tokenize(s), " ") == want }) {
			continue
		}
		if class >= 0 {
			return -1, false // ambiguous
		}
		class = c
	}
	return class, class >= 0
}
