package data

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
)

// catalog is the filtered layout of a Stream's files, built once by Open from the footers and
// the small columns (label, score, caption, width, height): which rows of which row groups
// the stream reads, and the per-row values that need no image decoding. Kept rows are
// numbered 0…N-1 in layout order (file, row group, row).
type catalog struct {
	sources    []*source
	units      []unit  // (file, row group) units with at least one kept row, in layout order
	rowUnit    []int32 // [N] unit of each kept row
	rowInGroup []int32 // [N] row index of each kept row within its row group
	labels     []int32 // [N] class of each kept row (0 if the files have no labels)
	tokens     []int32 // [N, maxTokens] caption token ids (condition "caption"), else nil
	maxTokens  int
	scanned    int64 // rows in the files, before filters
	classNames []string
	vocab      []string
	embedDim   int // length of every text_embedding (condition "text_embedding"), else 0
	// latentShape is [h, w, c] of every latent (files of latent rows, `fewstep data encode`), else
	// nil; latentScale is their metadata's fewstep.latent_scale, applied when they are read.
	latentShape []int32
	latentScale float32
	unitReads   atomic.Int64 // row groups read for images so far (tests check the unit cache)
}

// unit is one row group of one file and the range of its kept rows.
type unit struct {
	src, group int32
	first, n   int32 // kept rows first…first+n-1
}

// n returns N, the number of kept rows.
func (c *catalog) n() int { return len(c.rowUnit) }

// fileRow returns the file and the row index within the file of kept row k.
func (c *catalog) fileRow(k int32) (string, int64) {
	u := c.units[c.rowUnit[k]]
	src := c.sources[u.src]
	return src.path, src.groupStart[u.group] + int64(c.rowInGroup[k])
}

// needs says which columns a config reads, beyond the image.
type needs struct {
	label, readLabel, score, caption, embedding, noise bool
	// latent: the files hold latent rows (a latent column and no image column) instead of images.
	latent bool
}

func needsOf(cfg Config, sources []*source) needs {
	n := needs{
		label:     cfg.Condition == ConditionLabel || len(cfg.Labels) > 0 || cfg.TopKPerClass,
		score:     cfg.UseMinScore || cfg.TopK > 0,
		caption:   cfg.Condition == ConditionCaption || cfg.CaptionContains != "",
		embedding: cfg.Condition == ConditionTextEmbedding,
		noise:     cfg.Noise,
		latent:    len(sources) > 0 && sources[0].has(ColLatent) && !sources[0].has(ColImage),
	}
	n.readLabel = n.label
	if !n.readLabel { // read labels anyway when every file has them, for Batch.Labels
		n.readLabel = true
		for _, s := range sources {
			n.readLabel = n.readLabel && s.has(ColLabel)
		}
	}
	return n
}

// checkColumns checks every needed column of every file (presence and type) and that the
// files agree on class names and vocabulary, which it returns.
func checkColumns(cfg Config, sources []*source, nd needs) (classNames, vocab []string, err error) {
	var namesFrom, vocabFrom string
	for _, s := range sources {
		cols := []struct {
			name string
			kind columnKind
			need bool
		}{
			{ColImage, kindBinary, !nd.latent}, {ColLatent, kindFloatList, nd.latent}, {ColLatentShape, kindIntList, nd.latent},
			{ColLabel, kindInt, nd.readLabel}, {ColScore, kindFloat, nd.score},
			{ColCaption, kindString, nd.caption}, {ColTextEmbedding, kindFloatList, nd.embedding}, {ColNoise, kindFloatList, nd.noise},
			{ColWidth, kindInt, s.has(ColWidth)}, {ColHeight, kindInt, s.has(ColHeight)},
		}
		for _, c := range cols {
			if c.need {
				if err := s.check(c.name, c.kind); err != nil {
					return nil, nil, err
				}
			}
		}
		if s.classNames != nil {
			if classNames != nil && !slices.Equal(classNames, s.classNames) {
				return nil, nil, fmt.Errorf("data: %s: metadata %s differs from that of %s", s.path, MetaClassNames, namesFrom)
			}
			classNames, namesFrom = s.classNames, s.path
		}
		if s.vocab != nil {
			if vocab != nil && !slices.Equal(vocab, s.vocab) {
				return nil, nil, fmt.Errorf("data: %s: metadata %s differs from that of %s (tokens would mean different words)", s.path, MetaVocab, vocabFrom)
			}
			vocab, vocabFrom = s.vocab, s.path
		}
	}
	if cfg.Condition == ConditionCaption && len(vocab) == 0 {
		return nil, nil, fmt.Errorf("data: %s: metadata %s: missing; data.condition %q needs the caption vocabulary built at import time",
			sources[0].path, MetaVocab, ConditionCaption)
	}
	return classNames, vocab, nil
}

// candidate is a row that passed the per-row filters.
type candidate struct {
	src, group, row int32
	label           int32
	score           float32
}

// scanSource appends the rows of s that pass the per-row filters (label subset, caption
// substring, min score) to cands, and their caption tokens to tokens. It fails, naming file,
// column and row, on a null or out-of-range label under label conditioning and on an image
// larger than data.image_size (per the width/height columns).
func scanSource(cfg Config, si int, s *source, nd needs, vocab []string, cands []candidate, tokens []int32) ([]candidate, []int32, error) {
	var names []string
	for _, c := range []struct {
		name string
		read bool
	}{{ColLabel, nd.readLabel}, {ColScore, nd.score}, {ColCaption, nd.caption}, {ColWidth, s.has(ColWidth)}, {ColHeight, s.has(ColHeight)}} {
		if c.read {
			names = append(names, c.name)
		}
	}
	sc := scanner{cfg: cfg, si: si, s: s, nd: nd, enc: NewEncoder(vocab), labelSet: map[int32]bool{},
		substr: strings.ToLower(cfg.CaptionContains), cands: cands, tokens: tokens}
	for _, l := range cfg.Labels {
		sc.labelSet[int32(l)] = true
	}
	for g := range s.groupRows {
		if err := sc.group(g, names); err != nil {
			return nil, nil, err
		}
	}
	return sc.cands, sc.tokens, nil
}

// scanner holds scanSource's state while it walks one file's row groups.
type scanner struct {
	cfg      Config
	si       int
	s        *source
	nd       needs
	enc      *Encoder
	labelSet map[int32]bool
	substr   string
	cands    []candidate
	tokens   []int32
}

// group scans row group g, reading the columns names.
func (sc *scanner) group(g int, names []string) error {
	cfg, s, nd := sc.cfg, sc.s, sc.nd
	cols := map[string]column{}
	if len(names) > 0 {
		tbl, err := s.readGroup(g, names...)
		if err != nil {
			return err
		}
		defer tbl.Release()
		for _, name := range names {
			cols[name] = tableColumn(tbl, name)
		}
	}
	for i := range int(s.groupRows[g]) {
		where := func(col string) string {
			return fmt.Sprintf("data: %s: column %s, row %d", s.path, col, s.groupStart[g]+int64(i))
		}
		c := candidate{src: int32(sc.si), group: int32(g), row: int32(i)}
		if nd.readLabel {
			l, keep, err := sc.label(cols[ColLabel], i, where(ColLabel))
			if err != nil {
				return err
			}
			if !keep {
				continue
			}
			c.label = l
		}
		var caption string
		if nd.caption {
			caption = cols[ColCaption].stringAt(i)
			if sc.substr != "" && !strings.Contains(strings.ToLower(caption), sc.substr) {
				continue
			}
		}
		if nd.score {
			col := cols[ColScore]
			if col.isNull(i) {
				continue // an unscored row passes no score filter
			}
			v := col.float64At(i)
			if math.IsNaN(v) || (cfg.UseMinScore && v < cfg.MinScore) {
				continue
			}
			c.score = float32(v)
		}
		for _, side := range []string{ColWidth, ColHeight} {
			if col, ok := cols[side]; ok && !col.isNull(i) && col.int64At(i) > int64(cfg.ImageSize) {
				return fmt.Errorf("%s: %s %d is larger than data.image_size %d", where(side), side, col.int64At(i), cfg.ImageSize)
			}
		}
		sc.cands = append(sc.cands, c)
		if cfg.Condition == ConditionCaption {
			sc.tokens = appendTokens(sc.tokens, sc.enc, caption, cfg.MaxTokens)
		}
	}
	return nil
}

// label returns row i's label and whether it passes the label filter; a null or
// out-of-range label is an error under label conditioning.
func (sc *scanner) label(col column, i int, where string) (int32, bool, error) {
	cfg := sc.cfg
	if col.isNull(i) {
		if cfg.Condition == ConditionLabel {
			return 0, false, fmt.Errorf("%s: null label; data.condition %q needs every row labelled", where, ConditionLabel)
		}
		return 0, !sc.nd.label, nil // an unlabelled row matches no label filter
	}
	l := col.int64At(i)
	if cfg.Condition == ConditionLabel && (l < 0 || l >= int64(cfg.NumClasses)) {
		return 0, false, fmt.Errorf("%s: label %d out of range [0, %d) (data.num_classes)", where, l, cfg.NumClasses)
	}
	if l < math.MinInt32 || l > math.MaxInt32 || (len(sc.labelSet) > 0 && !sc.labelSet[int32(l)]) {
		return 0, false, nil
	}
	return int32(l), true, nil
}

// appendTokens appends the caption's token ids (Encode, via enc), padded with PadID or
// truncated to maxTokens.
func appendTokens(tokens []int32, enc *Encoder, caption string, maxTokens int) []int32 {
	ids := enc.Encode(caption, maxTokens)
	row := make([]int32, maxTokens)
	copy(row, ids)
	return append(tokens, row...)
}

// topK keeps the k highest-scoring candidates (per label if perClass), ties broken by layout
// order, and returns the kept indices in layout order.
func topK(cands []candidate, k int, perClass bool) []int {
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(cands[b].score, cands[a].score) })
	count := map[int32]int{}
	var keep []int
	for _, i := range idx {
		key := int32(0)
		if perClass {
			key = cands[i].label
		}
		if count[key] < k {
			count[key]++
			keep = append(keep, i)
		}
	}
	slices.Sort(keep)
	return keep
}

// newCatalog builds the layout of the kept candidates (in layout order).
func newCatalog(sources []*source, cands []candidate, keep []int, tokens []int32, maxTokens int) *catalog {
	c := &catalog{sources: sources, maxTokens: maxTokens}
	for _, s := range sources {
		c.scanned += s.pf.NumRows()
	}
	for _, i := range keep {
		cd := cands[i]
		if len(c.units) == 0 || c.units[len(c.units)-1].src != cd.src || c.units[len(c.units)-1].group != cd.group {
			c.units = append(c.units, unit{src: cd.src, group: cd.group, first: int32(len(c.rowUnit))})
		}
		c.units[len(c.units)-1].n++
		c.rowUnit = append(c.rowUnit, int32(len(c.units)-1))
		c.rowInGroup = append(c.rowInGroup, cd.row)
		c.labels = append(c.labels, cd.label)
		if tokens != nil {
			c.tokens = append(c.tokens, tokens[i*maxTokens:(i+1)*maxTokens]...)
		}
	}
	return c
}

// filterSummary describes the active filters for error messages.
func filterSummary(cfg Config) string {
	var parts []string
	if len(cfg.Labels) > 0 {
		parts = append(parts, fmt.Sprintf("data.labels %v", cfg.Labels))
	}
	if cfg.CaptionContains != "" {
		parts = append(parts, fmt.Sprintf("data.caption_contains %q", cfg.CaptionContains))
	}
	if cfg.UseMinScore {
		parts = append(parts, fmt.Sprintf("data.min_score %v", cfg.MinScore))
	}
	if cfg.TopK > 0 {
		parts = append(parts, fmt.Sprintf("data.top_k %d (per class: %v)", cfg.TopK, cfg.TopKPerClass))
	}
	if len(parts) == 0 {
		return "no filters"
	}
	return strings.Join(parts, ", ")
}
