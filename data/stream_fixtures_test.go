package data

import (
	"encoding/json"
	"fmt"
	"image"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// fixture describes a test Parquet file of rows with ids first…first+n-1, written with
// pqarrow directly (independent of the package's writer). A nil func omits its column.
type fixture struct {
	n, first, groupRows int
	image               func(id int) []byte        // default idPNG; nil return = null
	label               func(id int) (int32, bool) // (label, valid); default id % 3
	noLabel             bool                       // omit the label column
	labelAsString       bool                       // write label as a string column
	score               func(id int) float32       // score column
	caption             func(id int) string        // caption column
	embedding           func(id int) []float32     // text_embedding column (nil return = null)
	width               func(id int) int32         // width column
	meta                map[string]string          // extra key-value metadata
	classNames, vocab   []string                   // metadata MetaClassNames, MetaVocab
}

// idSide is the side of idPNG images.
const idSide = 4

// idPNG is a 4×4 gray PNG whose first two pixels encode id (little-endian) and whose other
// pixels are 200, so a batch tells which rows it holds.
func idPNG(t *testing.T, id int) []byte {
	g := image.NewGray(image.Rect(0, 0, idSide, idSide))
	for k := range g.Pix {
		g.Pix[k] = 200
	}
	g.Pix[0], g.Pix[1] = uint8(id), uint8(id>>8)
	return encodePNG(t, g)
}

// exampleID decodes the id of example i of b (an idPNG batch without augmentation).
func exampleID(b *Batch, i int) int {
	hwc := b.H * b.W * b.C
	px := func(k int) int { return int(math.Round(float64(b.X[i*hwc+k]+1) * 127.5)) }
	return px(0) | px(1)<<8
}

// writeFixture writes f to path.
func writeFixture(t *testing.T, path string, f fixture) {
	t.Helper()
	fields := []arrow.Field{{Name: ColImage, Type: arrow.BinaryTypes.Binary, Nullable: true}}
	if !f.noLabel {
		typ := arrow.DataType(arrow.PrimitiveTypes.Int32)
		if f.labelAsString {
			typ = arrow.BinaryTypes.String
		}
		fields = append(fields, arrow.Field{Name: ColLabel, Type: typ, Nullable: true})
	}
	optional := []struct {
		name string
		typ  arrow.DataType
		on   bool
	}{
		{ColScore, arrow.PrimitiveTypes.Float32, f.score != nil},
		{ColCaption, arrow.BinaryTypes.String, f.caption != nil},
		{ColTextEmbedding, arrow.ListOf(arrow.PrimitiveTypes.Float32), f.embedding != nil},
		{ColWidth, arrow.PrimitiveTypes.Int32, f.width != nil},
	}
	for _, o := range optional {
		if o.on {
			fields = append(fields, arrow.Field{Name: o.name, Type: o.typ, Nullable: true})
		}
	}
	schema := arrow.NewSchema(fields, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	for i := range f.n {
		f.appendRow(t, rb, schema, f.first+i)
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()

	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(int64(max(f.groupRows, 1))), parquet.WithDictionaryDefault(false))
	fw, err := pqarrow.NewFileWriter(schema, out, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{MetaSchemaVersion: "2"}
	for k, v := range f.meta {
		meta[k] = v
	}
	for key, v := range map[string][]string{MetaClassNames: f.classNames, MetaVocab: f.vocab} {
		if v != nil {
			meta[key] = string(must(json.Marshal(v)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		if err := fw.AppendKeyValueMetadata(k, meta[k]); err != nil {
			t.Fatal(err)
		}
	}
	if f.n > 0 {
		if err := fw.WriteBuffered(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
}

// appendRow appends row id to the builders of rb.
func (f fixture) appendRow(t *testing.T, rb *array.RecordBuilder, schema *arrow.Schema, id int) {
	for c, field := range schema.Fields() {
		b := rb.Field(c)
		switch field.Name {
		case ColImage:
			img := idPNG(t, id)
			if f.image != nil {
				img = f.image(id)
			}
			if img == nil {
				b.AppendNull()
			} else {
				b.(*array.BinaryBuilder).Append(img)
			}
		case ColLabel:
			l, ok := int32(id%3), true
			if f.label != nil {
				l, ok = f.label(id)
			}
			switch {
			case !ok:
				b.AppendNull()
			case f.labelAsString:
				b.(*array.StringBuilder).Append(fmt.Sprint(l))
			default:
				b.(*array.Int32Builder).Append(l)
			}
		case ColScore:
			b.(*array.Float32Builder).Append(f.score(id))
		case ColCaption:
			b.(*array.StringBuilder).Append(f.caption(id))
		case ColWidth:
			b.(*array.Int32Builder).Append(f.width(id))
		case ColTextEmbedding:
			lb := b.(*array.ListBuilder)
			if e := f.embedding(id); e == nil {
				lb.AppendNull()
			} else {
				lb.Append(true)
				lb.ValueBuilder().(*array.Float32Builder).AppendValues(e, nil)
			}
		}
	}
}

// fixtureDir writes files (name → fixture) into a temp dir and returns the dir.
func fixtureDir(t *testing.T, files map[string]fixture) string {
	t.Helper()
	dir := t.TempDir()
	for name, f := range files {
		writeFixture(t, filepath.Join(dir, name), f)
	}
	return dir
}

// idConfig is a config for idPNG fixtures at train: 4×4×1, 3 classes, no augmentation.
func idConfig(train string) Config {
	c := DefaultConfig()
	c.Train, c.ImageSize, c.Channels, c.NumClasses = train, idSide, 1, 3
	c.ShuffleBuffer, c.Workers, c.Prefetch = 8, 2, 2
	return c
}

// openStream opens cfg or fails the test; the stream is closed at cleanup.
func openStream(t *testing.T, cfg Config, batchSize int, seed uint64) *Stream {
	t.Helper()
	s, err := Open(cfg, batchSize, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// drawn is what a stream yielded: batches (copied) and the position after each.
type drawn struct {
	batches []*Batch
	ends    []Position
}

// take takes k batches from s.
func take(t *testing.T, s *Stream, k int) drawn {
	t.Helper()
	var d drawn
	for range k {
		b := NewBatch(s.Info(), s.cfg, s.batchSize)
		if err := s.Next(b); err != nil {
			t.Fatal(err)
		}
		d.batches = append(d.batches, b)
		d.ends = append(d.ends, s.Position())
	}
	return d
}

// ids returns the row ids of the drawn batches, in order.
func (d drawn) ids() []int {
	var out []int
	for _, b := range d.batches {
		for i := range b.B {
			out = append(out, exampleID(b, i))
		}
	}
	return out
}

// sameBatches reports the first difference between two batch sequences (bitwise).
func sameBatches(a, b []*Batch) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d batches vs %d", len(a), len(b))
	}
	for i := range a {
		switch {
		case !slices.Equal(a[i].X, b[i].X):
			return fmt.Errorf("batch %d: X differs", i)
		case !slices.Equal(a[i].Labels, b[i].Labels):
			return fmt.Errorf("batch %d: Labels %v vs %v", i, a[i].Labels, b[i].Labels)
		case !slices.Equal(a[i].Tokens, b[i].Tokens) || !slices.Equal(a[i].TextEmbedding, b[i].TextEmbedding) || !slices.Equal(a[i].Noise, b[i].Noise):
			return fmt.Errorf("batch %d: conditioning differs", i)
		}
	}
	return nil
}
