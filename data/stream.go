package data

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
)

// Stream yields shuffled, filtered, augmented mini-batches from one or more Parquet files,
// decoding images on background workers. Its output is a pure function of (files, config,
// seed, Position): the worker count, prefetch depth and timing change nothing, and a stream
// moved to a saved Position yields exactly the batches the original would have (see
// doc.go, "Order and reproducibility"). A Stream is not safe for concurrent use.
type Stream struct {
	cfg       Config
	cat       *catalog
	seed      uint64
	batchSize int
	info      Info
	shape     *Batch // the shape Next fills (NewBatch of info, cfg, batchSize)
	fp        string // Position.Fingerprint of this stream
	pos       Position
	stats     Stats
	badSeen   map[int32]bool
	err       error     // sticky error of a failed Next, cleared by SetPosition
	run       *pipeline // nil until the first Next after Open or SetPosition
	xPool     sync.Pool // *[]float32 of one decoded example [H*W*C]
	closed    bool
}

// Open opens the files of cfg.Train (comma-separated paths or globs) for streaming batches of
// batchSize examples with shuffle seed seed, positioned at the start of epoch 0. Before it
// returns it checks everything that can fail without decoding images — the config, that
// every glob matches a file, that every file is a readable Parquet file whose columns needed
// by cfg exist with the right types, labels in range, the files' metadata agree, and that
// the filters leave at least one row — so a bad dataset fails here, naming file and column,
// and not mid-training. It reads only the footers and the small columns (label, score,
// caption, width, height); images are read and decoded lazily by Next.
func Open(cfg Config, batchSize int, seed uint64) (_ *Stream, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if batchSize <= 0 {
		return nil, fmt.Errorf("data: open %s: batch size must be positive, got %d", cfg.Train, batchSize)
	}
	paths, err := expandGlobs(cfg.Train)
	if err != nil {
		return nil, err
	}
	var sources []*source
	defer func() {
		if err != nil {
			for _, s := range sources {
				s.close()
			}
		}
	}()
	for _, p := range paths {
		s, err := openSource(p, cfg.ReadBatchRows)
		if err != nil {
			return nil, err
		}
		sources = append(sources, s)
	}
	cat, err := buildCatalog(cfg, sources)
	if err != nil {
		return nil, err
	}
	s := &Stream{cfg: cfg, cat: cat, seed: seed, batchSize: batchSize, badSeen: map[int32]bool{}}
	s.info = Info{H: cfg.ImageSize, W: cfg.ImageSize, C: cfg.Channels, NumClasses: cfg.NumClasses,
		ClassNames: cat.classNames, Vocab: cat.vocab, EmbeddingDim: cat.embedDim, Condition: cfg.Condition}
	if ls := cat.latentShape; ls != nil { // latent rows: batches hold the (scaled) latents
		s.info.H, s.info.W, s.info.C, s.info.LatentScale = int(ls[0]), int(ls[1]), int(ls[2]), float64(cat.latentScale)
	}
	if cfg.Condition == ConditionCaption {
		s.info.MaxTokens = cfg.MaxTokens
	}
	s.shape = NewBatch(s.info, cfg, batchSize)
	s.fp = cat.fingerprint(cfg, seed)
	s.pos = Position{Fingerprint: s.fp}
	s.stats = Stats{Files: len(sources), Scanned: cat.scanned, Rows: int64(cat.n())}
	for _, src := range sources {
		s.stats.RowGroups += len(src.groupRows)
	}
	hwc := s.info.H * s.info.W * s.info.C
	s.xPool.New = func() any { x := make([]float32, hwc); return &x }
	return s, nil
}

// filtered is the outcome of a config's row filters on its files (see filterRows).
type filtered struct {
	nd                needs
	classNames, vocab []string
	cands             []candidate // rows that pass the per-row filters, in layout order
	tokens            []int32     // caption token ids of cands (condition "caption"), else nil
	keep              []int       // indices into cands of the kept rows (after top-K), ascending
}

// filterRows checks the columns of the files and scans their small columns through the
// filters: per-row (labels, caption substring, min score), then top-K. It is the selection
// of Open; InspectCuration and CurationGrid preview it.
func filterRows(cfg Config, sources []*source) (f filtered, err error) {
	f.nd = needsOf(cfg, sources)
	if f.classNames, f.vocab, err = checkColumns(cfg, sources, f.nd); err != nil {
		return f, err
	}
	for i, s := range sources {
		if f.cands, f.tokens, err = scanSource(cfg, i, s, f.nd, f.vocab, f.cands, f.tokens); err != nil {
			return f, err
		}
	}
	if cfg.TopK > 0 {
		f.keep = topK(f.cands, cfg.TopK, cfg.TopKPerClass)
	} else {
		f.keep = make([]int, len(f.cands))
		for i := range f.keep {
			f.keep[i] = i
		}
	}
	return f, nil
}

// buildCatalog checks the columns of the files, scans their small columns through the
// filters and returns the layout of the kept rows.
func buildCatalog(cfg Config, sources []*source) (*catalog, error) {
	f, err := filterRows(cfg, sources)
	if err != nil {
		return nil, err
	}
	if len(f.keep) > math.MaxInt32 {
		return nil, fmt.Errorf("data: %s: %d rows, at most %d supported", cfg.Train, len(f.keep), math.MaxInt32)
	}
	cat := newCatalog(sources, f.cands, f.keep, f.tokens, cfg.MaxTokens)
	cat.classNames, cat.vocab = f.classNames, f.vocab
	if cat.n() == 0 {
		var names []string
		for _, s := range sources {
			names = append(names, s.path)
		}
		return nil, fmt.Errorf("data: %s: empty dataset: %d rows in %d files (%s), none left after the filters (%s)",
			cfg.Train, cat.scanned, len(sources), strings.Join(names, ", "), filterSummary(cfg))
	}
	if f.nd.embedding {
		if cat.embedDim, err = cat.findEmbeddingDim(); err != nil {
			return nil, err
		}
	}
	if f.nd.latent {
		if err := cat.findLatentShape(cfg); err != nil {
			return nil, err
		}
	}
	return cat, nil
}

// findLatentShape reads the latent shape of the first kept row and the files' latent scale
// (every file must have the same scale: latents of different autoencoders do not mix).
func (c *catalog) findLatentShape(cfg Config) error {
	if cfg.HFlip || cfg.CropScale != 1 {
		return fmt.Errorf("data: %s: latent rows: data.hflip and data.crop_scale apply to images; turn them off", cfg.Train)
	}
	for i, src := range c.sources {
		scale, _, err := ReadLatentMeta(src.path)
		if err != nil {
			return err
		}
		if i == 0 {
			c.latentScale = float32(scale)
		} else if float32(scale) != c.latentScale {
			return fmt.Errorf("data: %s: %s %g differs from %s's %g (latents of different autoencoders)", src.path, MetaLatentScale, scale, c.sources[0].path, c.latentScale)
		}
	}
	u := c.units[0]
	tbl, err := c.sources[u.src].readGroup(int(u.group), ColLatentShape)
	if err != nil {
		return err
	}
	defer tbl.Release()
	shape := tableColumn(tbl, ColLatentShape).intsAt(int(c.rowInGroup[u.first]))
	if len(shape) != 3 || shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0 {
		return fmt.Errorf("data: %s: row %d: %s %v, want [h, w, c]", c.sources[u.src].path, c.sources[u.src].groupStart[u.group]+int64(c.rowInGroup[u.first]), ColLatentShape, shape)
	}
	c.latentShape = slices.Clone(shape)
	return nil
}

// findEmbeddingDim returns the length of the first non-empty text_embedding of a kept row,
// reading only that column, one row group at a time.
func (c *catalog) findEmbeddingDim() (int, error) {
	for _, u := range c.units {
		tbl, err := c.sources[u.src].readGroup(int(u.group), ColTextEmbedding)
		if err != nil {
			return 0, err
		}
		col, dim := tableColumn(tbl, ColTextEmbedding), 0
		for _, r := range c.rowInGroup[u.first : u.first+u.n] {
			if !col.isNull(int(r)) && len(col.floatsAt(int(r))) > 0 {
				dim = len(col.floatsAt(int(r)))
				break
			}
		}
		tbl.Release()
		if dim > 0 {
			return dim, nil
		}
	}
	return 0, fmt.Errorf("data: %s: column %s: every kept row is null or empty", c.sources[0].path, ColTextEmbedding)
}

// Info describes the batches: image shape, classes, vocabulary, embedding size.
func (s *Stream) Info() Info { return s.info }

// Stats returns the stream's counters; Skipped and BadRows cover the batches Next returned.
func (s *Stream) Stats() Stats {
	st := s.stats
	st.BadRows = slices.Clone(st.BadRows)
	return st
}

// Position returns the position after the last batch Next returned, with the stream's
// fingerprint; it is JSON-serializable for checkpoints.
func (s *Stream) Position() Position { return s.pos }

// SetPosition moves the stream to p, e.g. one restored from a checkpoint, so that the next
// batches are exactly those that followed p in the run that saved it. It fails if p is out
// of range or was saved for a different dataset layout, filter set, shuffle buffer or seed
// (its Fingerprint differs). A Position without a Fingerprint (from the v1 Loader) is
// accepted if in range, but its rows are not those the Loader would have yielded.
func (s *Stream) SetPosition(p Position) error {
	if s.closed {
		return errors.New("data: set position: stream is closed")
	}
	if n := int64(s.cat.n()); p.Epoch < 0 || p.Index < 0 || p.Index >= n {
		return fmt.Errorf("data: %s: set position {epoch %d, index %d}: want epoch >= 0 and index in [0, %d)", s.cfg.Train, p.Epoch, p.Index, n)
	}
	if p.Fingerprint != "" && p.Fingerprint != s.fp {
		return fmt.Errorf("data: %s: set position: it was saved for another dataset order (fingerprint %s, now %s): the files, their row groups, the filters, data.shuffle_buffer or the seed changed, so a resumed run would not see the rows the original would have",
			s.cfg.Train, p.Fingerprint, s.fp)
	}
	s.stop()
	s.err = nil
	s.pos = Position{Epoch: p.Epoch, Index: p.Index, Fingerprint: s.fp}
	return nil
}

// Next fills b (made by NewBatch for this stream) with the next batch and advances the
// position past it. After an error (an undecodable row with data.bad_rows "fail", a read
// error) the stream stays failed until SetPosition.
func (s *Stream) Next(b *Batch) error {
	switch {
	case s.closed:
		return errors.New("data: next: stream is closed")
	case s.err != nil:
		return s.err
	}
	if err := b.checkShape(s.shape); err != nil {
		return fmt.Errorf("data: %s: next: %w", s.cfg.Train, err)
	}
	if s.run == nil {
		s.start()
	}
	rb := <-s.run.ready
	if rb.err != nil {
		s.err = rb.err
		s.stop()
		return rb.err
	}
	b.copyFrom(rb.b)
	s.run.free <- rb.b
	s.pos = rb.end
	s.stats.Delivered += int64(s.batchSize)
	for _, sk := range rb.skipped {
		s.stats.Skipped++
		if !s.badSeen[sk.row] && len(s.stats.BadRows) < maxBadRows {
			file, row := s.cat.fileRow(sk.row)
			s.stats.BadRows = append(s.stats.BadRows, BadRow{File: file, Row: row, Err: sk.err.Error()})
		}
		s.badSeen[sk.row] = true
	}
	return nil
}

// Close stops the background workers and closes the files.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.stop()
	s.closed = true
	var errs []error
	for _, src := range s.cat.sources {
		errs = append(errs, src.close())
	}
	return errors.Join(errs...)
}

// Info describes what a Stream yields.
type Info struct {
	// H, W, C is the image shape of Batch.X.
	H, W, C int
	// NumClasses is Config.NumClasses; ClassNames the files' class names (nil if absent).
	NumClasses int
	ClassNames []string
	// Vocab is the caption vocabulary of the files (MetaVocab; nil if absent); token id i
	// stands for Vocab[i].
	Vocab []string
	// MaxTokens is the number of token ids per example under condition "caption".
	MaxTokens int
	// EmbeddingDim is the text_embedding length under condition "text_embedding", else 0.
	EmbeddingDim int
	// LatentScale is the scale applied to latent rows (H, W, C are then the latent's shape), 0 for
	// image rows.
	LatentScale float64
	// Condition is Config.Condition.
	Condition string
}

// Stats counts what a Stream read. Skipped and BadRows cover the batches Next returned.
type Stats struct {
	// Files and RowGroups are the files read and their row groups.
	Files, RowGroups int
	// Scanned is the number of rows in the files; Rows the number left after the filters
	// (the rows of one epoch).
	Scanned, Rows int64
	// Delivered is the number of examples Next returned.
	Delivered int64
	// Skipped counts undecodable rows skipped (once per epoch they occur in).
	Skipped int64
	// BadRows lists the distinct undecodable rows seen, at most maxBadRows of them.
	BadRows []BadRow
}

// maxBadRows bounds Stats.BadRows.
const maxBadRows = 100

// BadRow is an undecodable row: its file, row index in the file and the decoding error.
type BadRow struct {
	File string
	Row  int64
	Err  string
}

func (r BadRow) String() string { return fmt.Sprintf("%s: row %d: %s", r.File, r.Row, r.Err) }

// String summarises the stats in one line, naming the first bad rows.
func (s Stats) String() string {
	line := fmt.Sprintf("%d files, %d row groups, %d rows (%d before filters), %d delivered, %d undecodable rows skipped",
		s.Files, s.RowGroups, s.Rows, s.Scanned, s.Delivered, s.Skipped)
	if len(s.BadRows) > 0 {
		var names []string
		for _, r := range s.BadRows[:min(len(s.BadRows), 3)] {
			names = append(names, r.String())
		}
		line += ": " + strings.Join(names, "; ")
		if len(s.BadRows) > 3 {
			line += fmt.Sprintf("; and %d more", len(s.BadRows)-3)
		}
	}
	return line
}
