package data

import (
	"fmt"
	"slices"
)

// ReadVocab returns the caption vocabulary (metadata MetaVocab; token id i = entry i) of the
// training files listed in train (comma-separated paths or globs, as Config.Train). Every file that
// has a vocabulary must have the same one; an error names the file without one when none has it.
func ReadVocab(train string) ([]string, error) {
	vocab, _, err := ReadTextMeta(train)
	return vocab, err
}

// ReadTextMeta is ReadVocab plus the class names (MetaClassNames) of the first file that has them
// (nil if none has); the class names come back with the error when no file has a vocabulary.
func ReadTextMeta(train string) (vocab, classNames []string, err error) {
	paths, err := expandGlobs(train)
	if err != nil {
		return nil, nil, err
	}
	var from string
	for _, p := range paths {
		s, err := openSource(p, 1)
		if err != nil {
			return nil, nil, err
		}
		v := s.vocab
		if classNames == nil {
			classNames = s.classNames
		}
		s.close()
		switch {
		case v == nil:
		case vocab == nil:
			vocab, from = v, p
		case !slices.Equal(v, vocab):
			return nil, nil, fmt.Errorf("data: %s: metadata %s differs from that of %s (tokens would mean different words)", p, MetaVocab, from)
		}
	}
	if vocab == nil {
		return nil, classNames, fmt.Errorf("data: %s: no file has a caption vocabulary (metadata %s); re-import it with `fewstep data`", train, MetaVocab)
	}
	return vocab, classNames, nil
}
