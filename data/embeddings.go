package data

import (
	"fmt"
	"slices"
	"strings"
)

// PromptKey is the form under which a caption is looked up among precomputed embeddings: its
// tokens (Tokenize: lower case, punctuation dropped) joined by single spaces, so "A Seven." and
// "a seven" find the same row.
func PromptKey(caption string) string { return strings.Join(Tokenize(caption), " ") }

// PromptEmbeddings maps captions (PromptKey) to precomputed text embeddings: the caption and
// text_embedding columns of a set of Parquet files (model.text.source column).
type PromptEmbeddings struct {
	Files string               // the files read (comma-separated paths or globs)
	Dim   int                  // the length of every embedding
	byKey map[string][]float32 // PromptKey → embedding (the first row with that caption)
}

// Lookup returns the embedding of caption, or an error naming it and the files.
func (p *PromptEmbeddings) Lookup(caption string) ([]float32, error) {
	if e, ok := p.byKey[PromptKey(caption)]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("prompt %q: no row of %s has this caption, so it has no precomputed text_embedding (model.text.source column looks prompts up in model.text.prompt_file; add a row with its embedding)", caption, p.Files)
}

// Len is the number of distinct captions.
func (p *PromptEmbeddings) Len() int { return len(p.byKey) }

// ReadPromptEmbeddings reads the caption and text_embedding columns of files (comma-separated
// paths or globs). Rows with a null or empty caption or embedding are skipped; every embedding
// must have the same length (an error names file and row otherwise).
func ReadPromptEmbeddings(files string) (*PromptEmbeddings, error) {
	return readEmbeddings(files, false)
}

// ReadEmbeddingDim returns the length of the first non-empty text_embedding of files, reading as
// little as it can.
func ReadEmbeddingDim(files string) (int, error) {
	p, err := readEmbeddings(files, true)
	if err != nil {
		return 0, err
	}
	return p.Dim, nil
}

func readEmbeddings(files string, firstOnly bool) (*PromptEmbeddings, error) {
	paths, err := expandGlobs(files)
	if err != nil {
		return nil, err
	}
	out := &PromptEmbeddings{Files: files, byKey: map[string][]float32{}}
	for _, path := range paths {
		s, err := openSource(path, 1024)
		if err != nil {
			return nil, err
		}
		err = out.readSource(s, firstOnly)
		s.close()
		if err != nil {
			return nil, err
		}
		if firstOnly && out.Dim > 0 {
			return out, nil
		}
	}
	if out.Dim == 0 {
		return nil, fmt.Errorf("data: %s: no row has a non-empty %s (model.text.source column needs precomputed embeddings)", files, ColTextEmbedding)
	}
	return out, nil
}

func (p *PromptEmbeddings) readSource(s *source, firstOnly bool) error {
	if err := s.check(ColTextEmbedding, kindFloatList); err != nil {
		return err
	}
	hasCaption := s.has(ColCaption)
	if hasCaption {
		if err := s.check(ColCaption, kindString); err != nil {
			return err
		}
	}
	names := []string{ColTextEmbedding}
	if hasCaption && !firstOnly {
		names = append(names, ColCaption)
	}
	var row int64
	for g := range s.groupRows {
		tbl, err := s.readGroup(g, names...)
		if err != nil {
			return err
		}
		emb := tableColumn(tbl, ColTextEmbedding)
		var capt column
		if len(names) > 1 {
			capt = tableColumn(tbl, ColCaption)
		}
		for i := range int(s.groupRows[g]) {
			if emb.isNull(i) {
				continue
			}
			e := emb.floatsAt(i)
			if len(e) == 0 {
				continue
			}
			switch {
			case p.Dim == 0:
				p.Dim = len(e)
			case len(e) != p.Dim:
				tbl.Release()
				return fmt.Errorf("data: %s: row %d: %s has %d values, earlier rows %d", s.path, row+int64(i), ColTextEmbedding, len(e), p.Dim)
			}
			if firstOnly {
				tbl.Release()
				return nil
			}
			if len(names) == 1 || capt.isNull(i) {
				continue
			}
			if k := PromptKey(capt.stringAt(i)); k != "" {
				if _, ok := p.byKey[k]; !ok {
					p.byKey[k] = slices.Clone(e)
				}
			}
		}
		row += s.groupRows[g]
		tbl.Release()
	}
	return nil
}
