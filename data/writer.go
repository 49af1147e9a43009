package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

const (
	// schemaVersion is the version 1 of the schema: the subset (image, label, caption, width,
	// height) that writeImageParquet and, for now, the MNIST importers write and that Load
	// accepts.
	schemaVersion = "1"

	// writeChunkRows is the number of rows per Arrow record handed to WriteBuffered; it is
	// independent of the row-group size, which WriteBuffered enforces.
	writeChunkRows = 2048

	// DefaultRowGroupRows is the row-group size WriterOptions.RowGroupRows = 0 selects.
	DefaultRowGroupRows = 10000
)

// WriterOptions control writing a dataset (see NewWriter). The zero value is valid. Row
// groups also end early once they hold about 256 MiB of payload.
type WriterOptions struct {
	RowGroupRows int       // rows per Parquet row group; 0: DefaultRowGroupRows
	Compression  string    // "zstd" (default when ""), "snappy" or "none"
	ShardRows    int       // 0: one file; else at most this many rows per shard file
	ClassNames   []string  // file metadata MetaClassNames (nil or empty: absent)
	Vocab        []string  // file metadata MetaVocab (nil or empty: absent; importers build one, see BuildVocab)
	VocabSize    int       // importers: cap of the vocabulary they build when Vocab is nil; 0: DefaultVocabSize
	Progress     io.Writer // nil: silent; a terminal gets a progress bar, anything else a few plain lines
	Total        int       // expected rows for the progress report (0: unknown)
	// Meta holds further key-value metadata ("fewstep.autoencoder", …), written in key order.
	Meta map[string]string
}

// Validate checks the options' ranges and the compression name.
func (o WriterOptions) Validate() error {
	if o.RowGroupRows < 0 {
		return fmt.Errorf("row group size %d: want > 0 (or 0 for %d)", o.RowGroupRows, DefaultRowGroupRows)
	}
	if o.ShardRows < 0 {
		return fmt.Errorf("shard rows %d: want > 0 (or 0 for a single file)", o.ShardRows)
	}
	if o.VocabSize < 0 {
		return fmt.Errorf("vocabulary size %d: want > 0 (or 0 for %d)", o.VocabSize, DefaultVocabSize)
	}
	if o.Total < 0 {
		return fmt.Errorf("total rows %d: want >= 0", o.Total)
	}
	_, err := compressionCodec(o.Compression)
	return err
}

// compressionCodec maps a WriterOptions.Compression name to the Parquet codec.
func compressionCodec(name string) (compress.Compression, error) {
	switch name {
	case "", "zstd":
		return compress.Codecs.Zstd, nil
	case "snappy":
		return compress.Codecs.Snappy, nil
	case "none":
		return compress.Codecs.Uncompressed, nil
	}
	return 0, fmt.Errorf("compression %q: want zstd, snappy or none", name)
}

// writerColumns is the canonical column order of written files; NewWriter keeps the
// requested columns in this order.
var writerColumns = []string{ColImage, ColLatent, ColLatentShape, ColLabel, ColCaption, ColWidth, ColHeight, ColTextEmbedding, ColNoise, ColScore, ColID}

// Writer streams Rows to one Parquet file or to shard files. Each file is written to a
// temporary file in the output directory and fsynced; Close renames them to their final
// names (shards only once all are complete, since the names carry the shard count), so a
// failed or aborted import leaves no partial file behind. Not safe for concurrent use.
type Writer struct {
	outPath string
	opts    WriterOptions
	version string
	has     map[string]bool
	schema  *arrow.Schema
	props   *parquet.WriterProperties
	meta    [][2]string // key-value metadata, in order

	b        *array.RecordBuilder
	buffered int // rows in b
	bufBytes int // approximate payload bytes in b
	// groupRows and groupBytes estimate the current row group of the current file (see flush).
	groupRows, groupBytes int
	cur                   *writerShard // file being written; nil between shards
	done                  []string     // completed temporary files, in order
	rows                  int
	progress              *progressReport
	err                   error // sticky: the first error, after which the Writer has cleaned up
	closed                bool
}

// writerShard is one temporary Parquet file being written.
type writerShard struct {
	f    *os.File
	fw   *pqarrow.FileWriter
	rows int
}

// NewWriter returns a Writer to outPath storing the given columns (names from schema.go, in
// any order; files keep the canonical order image, latent, latent_shape, label, caption,
// width, height, text_embedding, noise, score, id). The columns must include image or
// latent (and latent_shape with latent). With opts.ShardRows > 0 the output is the shard
// files BASE-00000-of-0000N.parquet next to outPath (BASE is outPath without ".parquet").
// Files carry MetaSchemaVersion = SchemaVersion and, when set, MetaClassNames and
// MetaVocab. The image and float-list columns have no dictionary encoding and no
// statistics.
func NewWriter(outPath string, columns []string, opts WriterOptions) (*Writer, error) {
	return newWriter(outPath, columns, opts, SchemaVersion)
}

func newWriter(outPath string, columns []string, opts WriterOptions, version string) (*Writer, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("data: write %s: %w", outPath, err)
	}
	if opts.RowGroupRows == 0 {
		opts.RowGroupRows = DefaultRowGroupRows
	}
	has, err := writerColumnSet(columns)
	if err != nil {
		return nil, fmt.Errorf("data: write %s: %w", outPath, err)
	}
	w := &Writer{outPath: outPath, opts: opts, version: version, has: has}
	w.schema = w.arrowSchema()
	codec, _ := compressionCodec(opts.Compression)
	props := []parquet.WriterProperty{
		parquet.WithCompression(codec),
		parquet.WithMaxRowGroupLength(int64(opts.RowGroupRows)),
	}
	// Encoded images and float vectors do not repeat: dictionaries and min/max statistics
	// would only cost time and space. (pqarrow names list leaves NAME.list.element.)
	for _, path := range []string{ColImage, ColLatent + ".list.element", ColTextEmbedding + ".list.element", ColNoise + ".list.element"} {
		props = append(props, parquet.WithDictionaryFor(path, false), parquet.WithStatsFor(path, false))
	}
	w.props = parquet.NewWriterProperties(props...)
	w.meta = [][2]string{{MetaSchemaVersion, version}}
	for _, m := range []struct {
		key   string
		value []string
	}{{MetaClassNames, opts.ClassNames}, {MetaVocab, opts.Vocab}} {
		if len(m.value) > 0 {
			var j strings.Builder
			enc := json.NewEncoder(&j)
			enc.SetEscapeHTML(false) // "<pad>", not "\u003cpad\u003e"
			if err := enc.Encode(m.value); err != nil {
				return nil, fmt.Errorf("data: write %s: metadata %s: %w", outPath, m.key, err)
			}
			w.meta = append(w.meta, [2]string{m.key, strings.TrimSuffix(j.String(), "\n")})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Meta)) {
		w.meta = append(w.meta, [2]string{k, opts.Meta[k]})
	}
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return nil, fmt.Errorf("data: write %s: %w", outPath, err)
	}
	w.b = array.NewRecordBuilder(memory.DefaultAllocator, w.schema)
	w.progress = newProgressReport(opts.Progress, opts.Total)
	return w, nil
}

// writerColumnSet validates the requested columns.
func writerColumnSet(columns []string) (map[string]bool, error) {
	has := map[string]bool{}
	for _, c := range columns {
		if !slices.Contains(writerColumns, c) {
			return nil, fmt.Errorf("unknown column %q (want some of %s)", c, strings.Join(writerColumns, ", "))
		}
		if has[c] {
			return nil, fmt.Errorf("column %q listed twice", c)
		}
		has[c] = true
	}
	switch {
	case !has[ColImage] && !has[ColLatent]:
		return nil, fmt.Errorf("columns %v: want %s or %s", columns, ColImage, ColLatent)
	case has[ColLatent] != has[ColLatentShape]:
		return nil, fmt.Errorf("columns %v: %s and %s go together", columns, ColLatent, ColLatentShape)
	}
	return has, nil
}

// arrowSchema returns the schema of w's columns. An image or latent is required unless both
// columns exist; width and height are required; the rest is nullable.
func (w *Writer) arrowSchema() *arrow.Schema {
	both := w.has[ColImage] && w.has[ColLatent]
	types := map[string]arrow.Field{
		ColImage:         {Type: arrow.BinaryTypes.Binary, Nullable: both},
		ColLatent:        {Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32), Nullable: both},
		ColLatentShape:   {Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Int32), Nullable: both},
		ColLabel:         {Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		ColCaption:       {Type: arrow.BinaryTypes.String, Nullable: true},
		ColWidth:         {Type: arrow.PrimitiveTypes.Int32},
		ColHeight:        {Type: arrow.PrimitiveTypes.Int32},
		ColTextEmbedding: {Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32), Nullable: true},
		ColNoise:         {Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32), Nullable: true},
		ColScore:         {Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		ColID:            {Type: arrow.BinaryTypes.String, Nullable: true},
	}
	var fields []arrow.Field
	for _, c := range writerColumns {
		if w.has[c] {
			f := types[c]
			f.Name = c
			fields = append(fields, f)
		}
	}
	return arrow.NewSchema(fields, nil)
}

// Write appends one row. It fails if the row sets a field whose column the Writer lacks,
// has neither (or, with both columns, both) an image and a latent, or a latent whose size
// is not the product of its shape. After an error the Writer has removed its temporary
// files; later calls return the same error.
func (w *Writer) Write(r Row) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("data: write %s: Write after Close", w.outPath)
	}
	if err := w.checkRow(r); err != nil {
		return w.fail(fmt.Errorf("data: write %s: row %d: %w", w.outPath, w.rows, err))
	}
	if w.cur == nil {
		if err := w.openShard(); err != nil {
			return w.fail(err)
		}
	}
	w.appendRow(r)
	w.buffered++
	w.bufBytes += rowBytes(r)
	w.cur.rows++
	w.rows++
	if w.buffered >= writeChunkRows || w.bufBytes >= maxRowGroupBytes/8 {
		if err := w.flush(); err != nil {
			return w.fail(err)
		}
	}
	if w.opts.ShardRows > 0 && w.cur.rows >= w.opts.ShardRows {
		if err := w.finishShard(); err != nil {
			return w.fail(err)
		}
	}
	w.progress.add(1)
	return nil
}

// checkRow validates r against w's columns.
func (w *Writer) checkRow(r Row) error {
	for _, f := range []struct {
		col string
		set bool
	}{
		{ColImage, r.Image != nil}, {ColLatent, r.Latent != nil || r.LatentShape != nil},
		{ColLabel, r.HasLabel}, {ColCaption, r.Caption != ""}, {ColTextEmbedding, r.TextEmbedding != nil},
		{ColNoise, r.Noise != nil}, {ColScore, r.HasScore}, {ColID, r.ID != ""}, {ColWidth, r.Width != 0}, {ColHeight, r.Height != 0},
	} {
		if f.set && !w.has[f.col] {
			return fmt.Errorf("sets %s, but the writer has no %s column", f.col, f.col)
		}
	}
	hasImage, hasLatent := len(r.Image) > 0, r.Latent != nil
	switch {
	case hasImage && hasLatent:
		return errors.New("has both an image and a latent")
	case !hasImage && !hasLatent:
		return errors.New("has neither an image nor a latent")
	case hasLatent:
		size := 1
		for _, d := range r.LatentShape {
			if d <= 0 {
				return fmt.Errorf("latent shape %v: dimensions must be positive", r.LatentShape)
			}
			size *= int(d)
		}
		if len(r.LatentShape) == 0 || size != len(r.Latent) {
			return fmt.Errorf("latent has %d values, shape %v", len(r.Latent), r.LatentShape)
		}
	}
	if r.HasScore && (math.IsNaN(float64(r.Score)) || math.IsInf(float64(r.Score), 0)) {
		return fmt.Errorf("score %v is not finite", r.Score)
	}
	return nil
}

// appendRow appends r to the record builder (columns in schema order).
func (w *Writer) appendRow(r Row) {
	for i, f := range w.schema.Fields() {
		fb := w.b.Field(i)
		switch f.Name {
		case ColImage:
			if len(r.Image) == 0 {
				fb.AppendNull()
			} else {
				fb.(*array.BinaryBuilder).Append(r.Image)
			}
		case ColLatent:
			appendFloatList(fb.(*array.ListBuilder), r.Latent)
		case ColLatentShape:
			lb := fb.(*array.ListBuilder)
			if r.Latent == nil {
				lb.AppendNull()
			} else {
				lb.Append(true)
				lb.ValueBuilder().(*array.Int32Builder).AppendValues(r.LatentShape, nil)
			}
		case ColLabel:
			if r.HasLabel {
				fb.(*array.Int32Builder).Append(r.Label)
			} else {
				fb.AppendNull()
			}
		case ColCaption, ColID:
			s := r.Caption
			if f.Name == ColID {
				s = r.ID
			}
			if s == "" {
				fb.AppendNull()
			} else {
				fb.(*array.StringBuilder).Append(s)
			}
		case ColWidth:
			fb.(*array.Int32Builder).Append(r.Width)
		case ColHeight:
			fb.(*array.Int32Builder).Append(r.Height)
		case ColTextEmbedding:
			appendFloatList(fb.(*array.ListBuilder), r.TextEmbedding)
		case ColNoise:
			appendFloatList(fb.(*array.ListBuilder), r.Noise)
		case ColScore:
			if r.HasScore {
				fb.(*array.Float32Builder).Append(r.Score)
			} else {
				fb.AppendNull()
			}
		}
	}
}

// appendFloatList appends v, or a null when v is nil.
func appendFloatList(lb *array.ListBuilder, v []float32) {
	if v == nil {
		lb.AppendNull()
		return
	}
	lb.Append(true)
	lb.ValueBuilder().(*array.Float32Builder).AppendValues(v, nil)
}

// openShard starts a temporary file for the next output file.
func (w *Writer) openShard() error {
	final := w.outPath
	if w.opts.ShardRows > 0 {
		final = shardStem(w.outPath) + fmt.Sprintf("-%05d.parquet", len(w.done))
	}
	f, err := os.CreateTemp(filepath.Dir(w.outPath), "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return fmt.Errorf("data: write %s: %w", w.outPath, err)
	}
	fw, err := pqarrow.NewFileWriter(w.schema, writerOnly{f}, w.props, pqarrow.DefaultWriterProps())
	if err == nil {
		for _, kv := range w.meta {
			if err = fw.AppendKeyValueMetadata(kv[0], kv[1]); err != nil {
				break
			}
		}
	}
	w.cur = &writerShard{f: f, fw: fw}
	w.groupRows, w.groupBytes = 0, 0
	if err != nil {
		return fmt.Errorf("data: write %s: %w", f.Name(), err)
	}
	return nil
}

// flush hands the buffered rows to the current file's row-group buffer.
func (w *Writer) flush() error {
	if w.buffered == 0 {
		return nil
	}
	rec := w.b.NewRecordBatch()
	defer rec.Release()
	k, bytes, first := w.buffered, w.bufBytes, w.rows-w.buffered
	w.buffered, w.bufBytes = 0, 0
	if err := w.cur.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("data: write %s: rows %d to %d: %w", w.outPath, first, w.rows-1, err)
	}
	// WriteBuffered cuts row groups by row count only: follow it, and start a new group
	// early when the current one holds maxRowGroupBytes (large images would otherwise be
	// buffered in memory by the thousand).
	limit := w.opts.RowGroupRows
	if total := w.groupRows + k; total <= limit {
		w.groupRows, w.groupBytes = total, w.groupBytes+bytes
	} else { // rolled over: the last group holds the tail of this chunk
		w.groupRows = (total-limit-1)%limit + 1
		w.groupBytes = bytes * w.groupRows / k
	}
	if w.groupBytes >= maxRowGroupBytes && w.groupRows < limit {
		if err := w.cur.fw.NewBufferedRowGroupChecked(); err != nil {
			return fmt.Errorf("data: write %s: row %d: %w", w.outPath, w.rows, err)
		}
		w.groupRows, w.groupBytes = 0, 0
	}
	return nil
}

// maxRowGroupBytes caps the approximate payload of a row group (a variable for tests).
var maxRowGroupBytes = 256 << 20

// rowBytes approximates the stored size of r's payload.
func rowBytes(r Row) int {
	return len(r.Image) + 4*(len(r.Latent)+len(r.TextEmbedding)+len(r.Noise)) + len(r.Caption) + len(r.ID) + 16
}

// finishShard flushes, closes and fsyncs the current file and queues it for renaming.
func (w *Writer) finishShard() error {
	if err := w.flush(); err != nil {
		return err
	}
	s := w.cur
	if err := s.fw.Close(); err != nil {
		return fmt.Errorf("data: write %s: %w", s.f.Name(), err)
	}
	if err := s.f.Chmod(0o644); err != nil { // CreateTemp makes 0600 files
		return fmt.Errorf("data: write %s: %w", s.f.Name(), err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("data: write %s: sync: %w", s.f.Name(), err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("data: write %s: close: %w", s.f.Name(), err)
	}
	w.done = append(w.done, s.f.Name())
	w.cur = nil
	return nil
}

// Close finishes the last file and renames the temporary files to their final names; it
// returns those paths and the number of rows written. With no rows it writes one empty
// file (or shard). After a Write error it returns that error.
func (w *Writer) Close() (paths []string, rows int, err error) {
	if w.err != nil {
		return nil, 0, w.err
	}
	if w.closed {
		return nil, 0, fmt.Errorf("data: write %s: Close called twice", w.outPath)
	}
	if w.cur == nil && len(w.done) == 0 {
		if err := w.openShard(); err != nil {
			return nil, 0, w.fail(err)
		}
	}
	if w.cur != nil {
		if err := w.finishShard(); err != nil {
			return nil, 0, w.fail(err)
		}
	}
	w.closed = true
	w.b.Release()
	paths = w.finalPaths()
	for i, tmp := range w.done {
		if err := os.Rename(tmp, paths[i]); err != nil {
			for _, p := range paths[:i] { // leave no partial set behind
				os.Remove(p)
			}
			w.err = fmt.Errorf("data: write %s: %w", paths[i], err)
			w.removeTemps()
			return nil, 0, w.err
		}
	}
	if d, err := os.Open(filepath.Dir(w.outPath)); err == nil { // make the renames durable; best effort
		d.Sync()
		d.Close()
	}
	w.progress.finish()
	return paths, w.rows, nil
}

// Abort stops writing and removes the temporary files; nothing appears at the output
// paths. Importers call it when they fail between Writes. Abort after Close does nothing.
func (w *Writer) Abort() {
	if w.closed || w.err != nil {
		return
	}
	w.fail(fmt.Errorf("data: write %s: aborted", w.outPath))
}

// Rows returns the number of rows written so far.
func (w *Writer) Rows() int { return w.rows }

// finalPaths returns the output file names: outPath, or the shard names once their number
// is known.
func (w *Writer) finalPaths() []string {
	if w.opts.ShardRows <= 0 {
		return []string{w.outPath}
	}
	paths := make([]string, len(w.done))
	for i := range paths {
		paths[i] = ShardPath(w.outPath, i, len(w.done))
	}
	return paths
}

// ShardPath returns the name of shard i of n for outPath: "out.parquet" → "out-00002-of-00004.parquet".
func ShardPath(outPath string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.parquet", shardStem(outPath), i, n)
}

func shardStem(outPath string) string {
	return strings.TrimSuffix(outPath, ".parquet")
}

// fail records err, removes every temporary file and returns err.
func (w *Writer) fail(err error) error {
	w.err = err
	w.removeTemps()
	w.progress.stop()
	return err
}

func (w *Writer) removeTemps() {
	if w.cur != nil {
		w.cur.f.Close()
		os.Remove(w.cur.f.Name())
		w.cur = nil
	}
	for _, p := range w.done {
		os.Remove(p)
	}
	w.done = nil
	if w.b != nil && !w.closed {
		w.closed = true
		w.b.Release()
	}
}

// writerOnly hides Close so that pqarrow's FileWriter.Close does not close the file
// before the Writer has synced it.
type writerOnly struct{ io.Writer }

// imageRow is one row of the version-1 image schema.
type imageRow struct {
	PNG           []byte
	Label         int32
	Caption       string
	Width, Height int32
}

// writeImageParquet writes rows in schema version 1 (image, label, caption, width, height)
// to outPath atomically, in row groups of at most rowGroupRows rows, zstd-compressed.
// classNames (may be nil) go to the file metadata as a JSON array.
func writeImageParquet(outPath string, rows []imageRow, classNames []string, rowGroupRows int) error {
	if rowGroupRows <= 0 {
		return fmt.Errorf("data: write %s: row group size must be positive, got %d", outPath, rowGroupRows)
	}
	opts := WriterOptions{RowGroupRows: rowGroupRows, ClassNames: classNames}
	w, err := newWriter(outPath, []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight}, opts, schemaVersion)
	if err != nil {
		return err
	}
	for _, r := range rows {
		err := w.Write(Row{Image: r.PNG, Label: r.Label, HasLabel: true, Caption: r.Caption, Width: r.Width, Height: r.Height})
		if err != nil {
			return err
		}
	}
	_, _, err = w.Close()
	return err
}
