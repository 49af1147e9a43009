package data

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Batch is one mini-batch as Stream.Next fills it.
type Batch struct {
	// B is the number of examples; H, W, C the image shape (H = W = Config.ImageSize).
	B, H, W, C int
	// X holds the images, float32 [B, H, W, C] (channels-last) in [-1, 1].
	X []float32
	// Labels holds the class of each example, int32 [B] (0 when the files have no labels).
	Labels []int32
	// Tokens holds caption token ids, int32 [B, MaxTokens] (0 = padding), under condition
	// "caption"; nil otherwise.
	Tokens    []int32
	MaxTokens int
	// TextEmbedding holds the text_embedding column, float32 [B, EmbeddingDim], under
	// condition "text_embedding"; nil otherwise.
	TextEmbedding []float32
	EmbeddingDim  int
	// Noise holds the noise column, float32 [B, H, W, C]: the initial noise x_T whose teacher
	// ODE solve is example i of X (SDXS noise–image pairs, arXiv 2403.16627), under
	// Config.Noise; nil otherwise.
	Noise []float32
}

// NewBatch allocates a Batch of batchSize examples for a stream with info and cfg.
func NewBatch(info Info, cfg Config, batchSize int) *Batch {
	b := &Batch{B: batchSize, H: info.H, W: info.W, C: info.C,
		X: make([]float32, batchSize*info.H*info.W*info.C), Labels: make([]int32, batchSize)}
	switch cfg.Condition {
	case ConditionCaption:
		b.MaxTokens = cfg.MaxTokens
		b.Tokens = make([]int32, batchSize*cfg.MaxTokens)
	case ConditionTextEmbedding:
		b.EmbeddingDim = info.EmbeddingDim
		b.TextEmbedding = make([]float32, batchSize*info.EmbeddingDim)
	}
	if cfg.Noise {
		b.Noise = make([]float32, len(b.X))
	}
	return b
}

// checkShape reports how b differs from want (a batch NewBatch made for the stream).
func (b *Batch) checkShape(want *Batch) error {
	if b == nil {
		return fmt.Errorf("nil batch")
	}
	if b.B != want.B || b.H != want.H || b.W != want.W || b.C != want.C || len(b.X) != len(want.X) || len(b.Labels) != len(want.Labels) ||
		len(b.Tokens) != len(want.Tokens) || len(b.TextEmbedding) != len(want.TextEmbedding) || len(b.Noise) != len(want.Noise) {
		return fmt.Errorf("batch has B=%d H=%d W=%d C=%d, len(X)=%d, len(Labels)=%d, len(Tokens)=%d, len(TextEmbedding)=%d, len(Noise)=%d; want %d %d %d %d, %d, %d, %d, %d, %d (use NewBatch)",
			b.B, b.H, b.W, b.C, len(b.X), len(b.Labels), len(b.Tokens), len(b.TextEmbedding), len(b.Noise),
			want.B, want.H, want.W, want.C, len(want.X), len(want.Labels), len(want.Tokens), len(want.TextEmbedding), len(want.Noise))
	}
	return nil
}

// copyFrom copies src's contents (same shape) into b.
func (b *Batch) copyFrom(src *Batch) {
	copy(b.X, src.X)
	copy(b.Labels, src.Labels)
	copy(b.Tokens, src.Tokens)
	copy(b.TextEmbedding, src.TextEmbedding)
	copy(b.Noise, src.Noise)
	b.MaxTokens, b.EmbeddingDim = src.MaxTokens, src.EmbeddingDim
}

// The pipeline behind Stream.Next: one walker goroutine follows the epoch orders from the
// stream's position, reading each (file, row group) unit once when its first row comes up
// and dropping it after its last (a unit cache of encoded bytes; see doc.go, "Memory");
// Workers decoders decode and augment rows in any order; one assembler takes the
// results back in order (seq), skips or fails on undecodable rows, fills batches and queues
// up to Prefetch of them. Only the assembler decides what goes into a batch, and it does so
// in order from results that depend only on the row and its order position, so batches do
// not depend on the number of workers or on timing. At most `window` rows are between the
// walker and the assembler.
type pipeline struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	ready  chan readyBatch // filled batches, in order
	free   chan *Batch     // batches to fill
}

// readyBatch is a filled batch, the position after it and the rows skipped to fill it; or
// the error that ends the stream.
type readyBatch struct {
	b       *Batch
	end     Position
	skipped []skippedRow
	err     error
}

type skippedRow struct {
	row int32
	err error
}

// job is one order position: its sequence number in this run, its place in the order and
// its kept row, with the row's unit.
type job struct {
	seq          int64
	epoch, index int64
	row          int32
	unit         *unitData
}

// result is a decoded job: x the augmented image, emb its text embedding, noise its x_T;
// err says why the row does not decode (skipped or fatal per data.bad_rows), fatal that its
// unit is unreadable.
type result struct {
	job
	x     *[]float32
	emb   []float32
	noise []float32
	err   error
	fatal error
}

// unitData holds the encoded images (and embeddings and noises) of a unit's kept rows,
// copied out of Arrow memory; nil entries are nulls.
type unitData struct {
	err     error
	images  [][]byte
	latents [][]float32 // latent rows (catalog.latentShape set), else nil
	emb     [][]float32
	noise   [][]float32
}

// start launches the pipeline at s.pos.
func (s *Stream) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{cancel: cancel, ready: make(chan readyBatch, s.cfg.Prefetch), free: make(chan *Batch, s.cfg.Prefetch+2)}
	for range s.cfg.Prefetch + 2 {
		p.free <- NewBatch(s.info, s.cfg, s.batchSize)
	}
	window := 16*s.cfg.Workers + 16 // reorder slack: rows between the walker and the assembler
	tokens := make(chan struct{}, window)
	jobs := make(chan job, window)
	results := make(chan result, window)
	start := s.pos
	p.done.Go(func() { s.walk(ctx, start, jobs, tokens) })
	var workers sync.WaitGroup
	for range s.cfg.Workers {
		workers.Go(func() { s.decodeRows(ctx, jobs, results) })
	}
	p.done.Go(func() { workers.Wait(); close(results) })
	p.done.Go(func() { s.assemble(ctx, p, results, tokens) })
	s.run = p
}

// stop cancels the pipeline and waits for its goroutines.
func (s *Stream) stop() {
	if s.run != nil {
		s.run.cancel()
		s.run.done.Wait()
		s.run = nil
	}
}

// walk emits one job per order position from start on, forever, acquiring a window token
// for each.
func (s *Stream) walk(ctx context.Context, start Position, jobs chan<- job, tokens chan<- struct{}) {
	defer close(jobs)
	c := s.cat
	seq, epoch, index := int64(0), start.Epoch, int(start.Index)
	for ; ; epoch, index = epoch+1, 0 {
		order := c.epochOrder(s.seed, epoch, s.cfg.ShuffleBuffer)
		last := c.lastUse(order)
		cache := map[int32]*unitData{}
		for ; index < len(order); index++ {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			k := order[index]
			u := c.rowUnit[k]
			ud := cache[u]
			if ud == nil {
				ud = c.readUnit(u, s.cat.embedDim > 0, s.cfg.Noise)
				cache[u] = ud
			}
			if last[u] == index {
				delete(cache, u)
			}
			select {
			case jobs <- job{seq: seq, epoch: epoch, index: int64(index), row: k, unit: ud}:
				seq++
			case <-ctx.Done():
				return
			}
		}
	}
}

// readUnit reads the image — or, for latent rows, the latent — column of unit u (and
// text_embedding, noise) in one pass, and copies its kept rows.
func (c *catalog) readUnit(u int32, embedding, noise bool) *unitData {
	c.unitReads.Add(1)
	un := c.units[u]
	main := ColImage
	if c.latentShape != nil {
		main = ColLatent
	}
	names := []string{main}
	if embedding {
		names = append(names, ColTextEmbedding)
	}
	if noise {
		names = append(names, ColNoise)
	}
	tbl, err := c.sources[un.src].readGroup(int(un.group), names...)
	if err != nil {
		return &unitData{err: err}
	}
	defer tbl.Release()
	rows := c.rowInGroup[un.first : un.first+un.n]
	ud := &unitData{}
	if main == ColLatent {
		ud.latents = floatLists(tableColumn(tbl, ColLatent), rows)
	} else {
		ud.images = byteLists(tableColumn(tbl, ColImage), rows)
	}
	if embedding {
		ud.emb = floatLists(tableColumn(tbl, ColTextEmbedding), rows)
	}
	if noise {
		ud.noise = floatLists(tableColumn(tbl, ColNoise), rows)
	}
	return ud
}

// byteLists copies the binary values of col at rows out of Arrow memory into one allocation;
// nulls stay nil.
func byteLists(col column, rows []int32) [][]byte {
	total := 0
	for _, r := range rows {
		total += len(col.bytesAt(int(r)))
	}
	out := make([][]byte, len(rows))
	flat := make([]byte, 0, total)
	for i, r := range rows {
		if !col.isNull(int(r)) {
			start := len(flat) // flat never grows past its capacity: the slices stay valid
			flat = append(flat, col.bytesAt(int(r))...)
			out[i] = flat[start:len(flat):len(flat)]
		}
	}
	return out
}

// floatLists copies the list<float32> values of col at rows out of Arrow memory; nulls stay nil.
func floatLists(col column, rows []int32) [][]float32 {
	out := make([][]float32, len(rows))
	for i, r := range rows {
		if !col.isNull(int(r)) {
			out[i] = slices.Clone(col.floatsAt(int(r)))
		}
	}
	return out
}

// rowError is why a row does not decode, with the column at fault.
type rowError struct {
	col string
	err error
}

func (e *rowError) Error() string { return fmt.Sprintf("column %s: %v", e.col, e.err) }
func (e *rowError) Unwrap() error { return e.err }

// decodeRows decodes and augments jobs until jobs closes or ctx ends.
func (s *Stream) decodeRows(ctx context.Context, jobs <-chan job, results chan<- result) {
	size, channels, dim := s.cfg.ImageSize, s.cfg.Channels, s.cat.embedDim
	canvas := make([]uint8, size*size*channels)
	for j := range jobs {
		r := result{job: j}
		if j.unit.err != nil {
			r.fatal = j.unit.err
		} else {
			i := j.row - s.cat.units[s.cat.rowUnit[j.row]].first
			r.x = s.xPool.Get().(*[]float32)
			clear(canvas)
			if lat := j.unit.latents; lat != nil { // latent rows: copy, scaled (LDM's scale_by_std)
				if len(lat[i]) != len(*r.x) {
					r.err = &rowError{ColLatent, fmt.Errorf("null or %d values, want %d (latent_shape %v)", len(lat[i]), len(*r.x), s.cat.latentShape)}
				} else {
					for k, v := range lat[i] {
						(*r.x)[k] = v * s.cat.latentScale
					}
				}
			} else if img := j.unit.images[i]; img == nil {
				r.err = &rowError{ColImage, errors.New("null image")}
			} else if err := decodeImage(canvas, img, size, channels); err != nil {
				r.err = &rowError{ColImage, err}
			} else {
				drawAugmentation(s.cfg, s.seed, j.epoch, j.index).render(*r.x, canvas, size, channels)
			}
			if dim > 0 && r.err == nil {
				if r.emb = j.unit.emb[i]; len(r.emb) != dim {
					r.err = &rowError{ColTextEmbedding, fmt.Errorf("null or length %d, want %d", len(r.emb), dim)}
				}
			}
			if s.cfg.Noise && r.err == nil {
				r.noise = j.unit.noise[i]
				r.err = checkNoise(r.noise, len(*r.x)) // the model input's size: image or latent
			}
		}
		select {
		case results <- r:
		case <-ctx.Done():
			return
		}
	}
}

// checkNoise reports, as a rowError of the noise column, a null x_T or one that is not
// hwc = H·W·C values.
func checkNoise(noise []float32, hwc int) error {
	switch {
	case noise == nil:
		return &rowError{ColNoise, errors.New("null noise; data.noise needs the x_T of every row")}
	case len(noise) != hwc:
		return &rowError{ColNoise, fmt.Errorf("%d values, want %d (data.image_size² × data.channels)", len(noise), hwc)}
	}
	return nil
}

// assemble takes results back in sequence order and fills batches (see pipeline).
func (s *Stream) assemble(ctx context.Context, p *pipeline, results <-chan result, tokens <-chan struct{}) {
	a := &assembler{s: s, ctx: ctx, free: p.free}
	pending := map[int64]result{} // results that came before their turn
	next := int64(0)
	for r := range results {
		pending[r.seq] = r
		for r, ok := pending[next]; ok; r, ok = pending[next] {
			delete(pending, next)
			next++
			<-tokens
			rb, full := a.add(r)
			if !full {
				continue
			}
			select {
			case p.ready <- rb:
			case <-ctx.Done():
				return
			}
			if rb.err != nil {
				return
			}
		}
	}
}

// assembler is the state of assemble: the batch being filled and the rows skipped so far.
type assembler struct {
	s       *Stream
	ctx     context.Context
	free    <-chan *Batch
	cur     *Batch
	fill    int
	skipped []skippedRow
	badRun  int // consecutive undecodable rows
}

// add places the next result in order; it returns a batch (or an error ending the stream)
// and true when one is ready.
func (a *assembler) add(r result) (readyBatch, bool) {
	s := a.s
	if r.fatal != nil {
		return readyBatch{err: r.fatal}, true
	}
	if r.err != nil {
		s.xPool.Put(r.x)
		file, row := s.cat.fileRow(r.row)
		if s.cfg.BadRows == BadRowsFail {
			return readyBatch{err: fmt.Errorf("data: %s: row %d: %w (data.bad_rows is %q)", file, row, r.err, BadRowsFail)}, true
		}
		a.skipped = append(a.skipped, skippedRow{r.row, r.err})
		if a.badRun++; a.badRun >= s.cat.n() {
			return readyBatch{err: fmt.Errorf("data: %s: no row decodes (%d in a row failed; the last: %s: row %d: %v)", s.cfg.Train, a.badRun, file, row, r.err)}, true
		}
		return readyBatch{}, false
	}
	a.badRun = 0
	if a.cur == nil {
		select { // never waits long: Prefetch+2 batches circulate, at most Prefetch+1 elsewhere
		case a.cur = <-a.free:
		case <-a.ctx.Done():
			return readyBatch{}, false
		}
	}
	s.place(a.cur, a.fill, r)
	if a.fill++; a.fill < s.batchSize {
		return readyBatch{}, false
	}
	rb := readyBatch{b: a.cur, end: s.after(r.job), skipped: a.skipped}
	a.cur, a.fill, a.skipped = nil, 0, nil
	return rb, true
}

// place copies result r into example i of b and returns r's buffer to the pool.
func (s *Stream) place(b *Batch, i int, r result) {
	hwc := len(*r.x)
	copy(b.X[i*hwc:(i+1)*hwc], *r.x)
	s.xPool.Put(r.x)
	b.Labels[i] = s.cat.labels[r.row]
	if t := b.MaxTokens; b.Tokens != nil {
		copy(b.Tokens[i*t:(i+1)*t], s.cat.tokens[int(r.row)*t:])
	}
	if d := b.EmbeddingDim; b.TextEmbedding != nil {
		copy(b.TextEmbedding[i*d:(i+1)*d], r.emb)
	}
	if b.Noise != nil {
		copy(b.Noise[i*hwc:(i+1)*hwc], r.noise)
	}
}

// after returns the position that follows job j.
func (s *Stream) after(j job) Position {
	p := Position{Epoch: j.epoch, Index: j.index + 1, Fingerprint: s.fp}
	if p.Index == int64(s.cat.n()) {
		p.Epoch, p.Index = p.Epoch+1, 0
	}
	return p
}
