package data

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Scorer gives the rows of one row group their scores: scores[i] for row i of g, valid[i]
// false for a null score (both of length g.Rows). Its errors name file, column and row.
type Scorer func(g *ScoreGroup) (scores []float32, valid []bool, err error)

// ScoreGroup is one row group of the file ScoreFile is scoring, all columns read.
type ScoreGroup struct {
	Path       string   // the input file
	FirstRow   int64    // file row index of the group's first row
	Rows       int      // rows in the group
	ClassNames []string // the file's metadata MetaClassNames (nil if absent)
	src        *source
	tbl        arrow.Table
}

// where names row i's cell of column col for error messages.
func (g *ScoreGroup) where(col string, i int) string {
	return fmt.Sprintf("data: %s: column %s, row %d", g.Path, col, g.FirstRow+int64(i))
}

// column returns the named column after checking that the file has it with the right type.
func (g *ScoreGroup) column(name string, kind columnKind) (column, error) {
	if err := g.src.check(name, kind); err != nil {
		return column{}, err
	}
	return tableColumn(g.tbl, name), nil
}

// Labels returns the label column, labels int32 [Rows] with valid [Rows] false for nulls. A
// file without an integer label column is an error naming it.
func (g *ScoreGroup) Labels() (labels []int32, valid []bool, err error) {
	col, err := g.column(ColLabel, kindInt)
	if err != nil {
		return nil, nil, err
	}
	labels, valid = make([]int32, g.Rows), make([]bool, g.Rows)
	for i := range g.Rows {
		if col.isNull(i) {
			continue
		}
		l := col.int64At(i)
		if l < math.MinInt32 || l > math.MaxInt32 {
			return nil, nil, fmt.Errorf("%s: label %d out of the int32 range", g.where(ColLabel, i), l)
		}
		labels[i], valid[i] = int32(l), true
	}
	return labels, valid, nil
}

// Images decodes the group's images as the loader does: float32 [Rows, size, size, channels]
// with pixel/127.5 − 1 in [-1, 1], each image centered on a black canvas. A null, undecodable
// or too large image is an error naming file, column and row.
func (g *ScoreGroup) Images(size, channels int) ([]float32, error) {
	if size <= 0 || (channels != 1 && channels != 3) {
		return nil, fmt.Errorf("data: %s: images of size %d with %d channels: want size > 0 and 1 or 3 channels", g.Path, size, channels)
	}
	images, err := g.column(ColImage, kindBinary)
	if err != nil {
		return nil, err
	}
	hwc := size * size * channels
	out := make([]float32, g.Rows*hwc)
	err = parallelRange(g.Rows, func(lo, hi int) error {
		canvas := make([]uint8, hwc)
		for i := lo; i < hi; i++ {
			if images.isNull(i) {
				return fmt.Errorf("%s: null image", g.where(ColImage, i))
			}
			clear(canvas)
			if err := decodeImage(canvas, images.bytesAt(i), size, channels); err != nil {
				return fmt.Errorf("%s: %w", g.where(ColImage, i), err)
			}
			dst := out[i*hwc : (i+1)*hwc]
			for k, v := range canvas {
				dst[k] = pixelScale[v]
			}
		}
		return nil
	})
	return out, err
}

// ScoreSummary describes a file written by ScoreFile.
type ScoreSummary struct {
	Rows   int       // rows written
	Scores []float32 // the non-null scores, in row order
}

// Quantiles is one line: the number of scores, min, p10, p25, median, p75, p90 and max.
func (s ScoreSummary) Quantiles() string { return scoreQuantiles(s.Scores) }

// ScoreFile writes a copy of the Parquet file in to out with the score column (ColScore,
// float32, nullable) set by score, reading and writing one row group at a time (score sees
// each group of in once, in order). Every other column, the row groups, each column's
// compression, dictionary and statistics settings and the file key-value metadata (class
// names, vocabulary) are kept; an existing score column is replaced in place, a new one goes
// before id (the Writer's column order) or last. MetaSchemaVersion becomes SchemaVersion:
// version 1 has no score column. The output is written to a temporary file in out's
// directory, fsynced and renamed, so a failure leaves no partial file (out may be in).
// progress (nil: silent) gets a progress report.
func ScoreFile(in, out string, score Scorer, progress io.Writer) (ScoreSummary, error) {
	var sum ScoreSummary
	src, err := openSource(in, DefaultConfig().ReadBatchRows)
	if err != nil {
		return sum, err
	}
	defer src.close()
	schema, scoreAt, replace := scoredSchema(src.schema)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return sum, fmt.Errorf("data: write %s: %w", out, err)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return sum, fmt.Errorf("data: write %s: %w", out, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	fw, err := newScoredWriter(src, schema, f)
	if err != nil {
		return sum, fmt.Errorf("data: write %s: %w", out, err)
	}
	p := newProgressReport(progress, int(src.pf.NumRows()))
	for g := range src.groupRows {
		if err := scoreGroup(src, g, schema, scoreAt, replace, score, fw, &sum); err != nil {
			p.stop()
			fw.Close()
			return sum, err
		}
		p.add(int(src.groupRows[g]))
	}
	if err := fw.Close(); err != nil {
		return sum, fmt.Errorf("data: write %s: %w", out, err)
	}
	if err := finishTemp(f, out); err != nil {
		return sum, err
	}
	done = true
	p.finish()
	return sum, nil
}

// scoredSchema returns the output schema: in's fields with the score field replaced in place
// or inserted before id (else appended), its index and whether it replaced a field.
func scoredSchema(in *arrow.Schema) (*arrow.Schema, int, bool) {
	field := arrow.Field{Name: ColScore, Type: arrow.PrimitiveTypes.Float32, Nullable: true}
	fields := slices.Clone(in.Fields())
	if idx := in.FieldIndices(ColScore); len(idx) > 0 {
		fields[idx[0]] = field
		return arrow.NewSchema(fields, nil), idx[0], true
	}
	at := len(fields)
	if idx := in.FieldIndices(ColID); len(idx) > 0 {
		at = idx[0]
	}
	return arrow.NewSchema(slices.Insert(fields, at, field), nil), at, false
}

// newScoredWriter opens the Parquet writer of the output: each input column's codec,
// dictionary and statistics settings (from its first row group), row groups as large as the
// largest input group, and in's key-value metadata with MetaSchemaVersion set to
// SchemaVersion (a stale ARROW:schema is dropped and, if in had one, written afresh).
func newScoredWriter(src *source, schema *arrow.Schema, w io.Writer) (*pqarrow.FileWriter, error) {
	md := src.pf.MetaData()
	props := []parquet.WriterProperty{
		parquet.WithMaxRowGroupLength(slices.Max(append([]int64{1}, src.groupRows...))),
		parquet.WithCompression(compress.Codecs.Zstd),
	}
	if md.NumRowGroups() > 0 {
		rg := md.RowGroup(0)
		for c := range md.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return nil, err
			}
			stats, _ := cc.StatsSet()
			path := cc.PathInSchema().String()
			props = append(props, parquet.WithCompressionFor(path, cc.Compression()),
				parquet.WithDictionaryFor(path, cc.HasDictionaryPage()), parquet.WithStatsFor(path, stats))
		}
	}
	arrowProps := pqarrow.DefaultWriterProps()
	kv := md.KeyValueMetadata()
	if kv.FindValue("ARROW:schema") != nil {
		arrowProps = pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
	}
	fw, err := pqarrow.NewFileWriter(schema, writerOnly{w}, parquet.NewWriterProperties(props...), arrowProps)
	if err != nil {
		return nil, err
	}
	if kv.FindValue(MetaSchemaVersion) == nil {
		if err := fw.AppendKeyValueMetadata(MetaSchemaVersion, SchemaVersion); err != nil {
			return nil, err
		}
	}
	for i, k := range kv.Keys() {
		v := kv.Values()[i]
		switch k {
		case "ARROW:schema":
			continue
		case MetaSchemaVersion:
			v = SchemaVersion
		}
		if err := fw.AppendKeyValueMetadata(k, v); err != nil {
			return nil, err
		}
	}
	return fw, nil
}

// scoreGroup reads row group g of src, scores it and writes it with the score column.
func scoreGroup(src *source, g int, schema *arrow.Schema, scoreAt int, replace bool, score Scorer, fw *pqarrow.FileWriter, sum *ScoreSummary) error {
	var names []string
	for _, f := range src.schema.Fields() {
		names = append(names, f.Name)
	}
	tbl, err := src.readGroup(g, names...)
	if err != nil {
		return err
	}
	defer tbl.Release()
	grp := &ScoreGroup{Path: src.path, FirstRow: src.groupStart[g], Rows: int(tbl.NumRows()), ClassNames: src.classNames, src: src, tbl: tbl}
	scores, valid, err := score(grp)
	if err != nil {
		return err
	}
	if len(scores) != grp.Rows || len(valid) != grp.Rows {
		return fmt.Errorf("data: %s: row group %d: %d scores (%d valid flags) for %d rows", src.path, g, len(scores), len(valid), grp.Rows)
	}
	b := array.NewFloat32Builder(memory.DefaultAllocator)
	defer b.Release()
	for i, v := range scores {
		if !valid[i] {
			b.AppendNull()
			continue
		}
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: score %v is not finite", grp.where(ColScore, i), v)
		}
		b.Append(v)
		sum.Scores = append(sum.Scores, v)
	}
	scoreArr := b.NewArray()
	defer scoreArr.Release()
	scoreChunks := arrow.NewChunked(arrow.PrimitiveTypes.Float32, []arrow.Array{scoreArr})
	defer scoreChunks.Release()
	cols := make([]arrow.Column, schema.NumFields())
	for j := range cols {
		data := scoreChunks
		switch {
		case j < scoreAt || (replace && j > scoreAt):
			data = tbl.Column(j).Data()
		case j > scoreAt:
			data = tbl.Column(j - 1).Data()
		}
		cols[j] = *arrow.NewColumn(schema.Field(j), data)
	}
	defer func() {
		for i := range cols {
			cols[i].Release()
		}
	}()
	out := array.NewTable(schema, cols, int64(grp.Rows))
	defer out.Release()
	if err := fw.WriteTable(out, int64(max(grp.Rows, 1))); err != nil {
		return fmt.Errorf("data: write %s: row group %d: %w", src.path, g, err)
	}
	sum.Rows += grp.Rows
	return nil
}

// finishTemp makes the written temporary file f readable (0644), syncs and closes it and
// renames it to path, then syncs the directory (best effort).
func finishTemp(f *os.File, path string) error {
	err := f.Chmod(0o644) // CreateTemp makes 0600 files
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("data: write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
