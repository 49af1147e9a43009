package data

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// wtFile is a Parquet file read back whole: one record with every column, and its footer.
type wtFile struct {
	rec  arrow.RecordBatch
	md   map[string]string
	pf   *file.Reader
	cols map[string]arrow.Array
}

// wtRead reads path with pqarrow into a single record batch.
func wtRead(t *testing.T, path string) *wtFile {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Close() })
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tbl.Release)
	n := max(tbl.NumRows(), 1)
	tr := array.NewTableReader(tbl, n)
	t.Cleanup(tr.Release)
	f := &wtFile{md: map[string]string{}, pf: pf, cols: map[string]arrow.Array{}}
	if tr.Next() {
		f.rec = tr.RecordBatch()
		f.rec.Retain()
		t.Cleanup(f.rec.Release)
		for i, fld := range f.rec.Schema().Fields() {
			f.cols[fld.Name] = f.rec.Column(i)
		}
	}
	kv := pf.MetaData().KeyValueMetadata()
	for i, k := range kv.Keys() {
		f.md[k] = kv.Values()[i]
	}
	return f
}

func (f *wtFile) names() []string {
	var names []string
	for _, fld := range f.rec.Schema().Fields() {
		names = append(names, fld.Name)
	}
	return names
}

func (f *wtFile) strings(t *testing.T, name string) []string {
	t.Helper()
	a := f.cols[name].(*array.String)
	out := make([]string, a.Len())
	for i := range out {
		if a.IsValid(i) {
			out[i] = a.Value(i)
		} else {
			out[i] = "<null>"
		}
	}
	return out
}

func (f *wtFile) int32s(t *testing.T, name string) []int32 {
	t.Helper()
	a := f.cols[name].(*array.Int32)
	out := make([]int32, a.Len())
	for i := range out {
		out[i] = a.Value(i)
		if a.IsNull(i) {
			out[i] = -999
		}
	}
	return out
}

func wtList[T any](t *testing.T, a arrow.Array, i int) []T {
	t.Helper()
	l := a.(*array.List)
	if l.IsNull(i) {
		return nil
	}
	lo, hi := l.ValueOffsets(i)
	var out []T
	switch v := l.ListValues().(type) {
	case *array.Float32:
		for k := lo; k < hi; k++ {
			out = append(out, any(v.Value(int(k))).(T))
		}
	case *array.Int32:
		for k := lo; k < hi; k++ {
			out = append(out, any(v.Value(int(k))).(T))
		}
	}
	return out
}

func TestWriterRoundTrip(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "all.parquet")
	all := []string{ColID, ColScore, ColTextEmbedding, ColHeight, ColWidth, ColCaption, ColLabel, ColLatentShape, ColLatent, ColImage}
	opts := WriterOptions{ClassNames: []string{"a", "b"}, Vocab: []string{PadToken, UnkToken, "red"}}
	w, err := NewWriter(out, all, opts)
	if err != nil {
		t.Fatal(err)
	}
	rows := []Row{
		{Image: []byte{1, 2, 3}, Label: 1, HasLabel: true, Caption: "red", TextEmbedding: []float32{0.5, -1}, Score: 2.5, HasScore: true, ID: "x0", Width: 4, Height: 3},
		{Latent: []float32{1, 2, 3, 4, 5, 6}, LatentShape: []int32{1, 2, 3}},
		{Image: []byte{9}, Label: 0, HasLabel: true, TextEmbedding: []float32{}},
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	paths, n, err := w.Close()
	if err != nil || n != 3 || !slices.Equal(paths, []string{out}) {
		t.Fatalf("Close = %v, %d, %v", paths, n, err)
	}
	f := wtRead(t, out)
	if want := []string{ColImage, ColLatent, ColLatentShape, ColLabel, ColCaption, ColWidth, ColHeight, ColTextEmbedding, ColScore, ColID}; !slices.Equal(f.names(), want) {
		t.Errorf("columns %v, want canonical order %v", f.names(), want)
	}
	if f.md[MetaSchemaVersion] != "2" || f.md[MetaClassNames] != `["a","b"]` || f.md[MetaVocab] != `["<pad>","<unk>","red"]` {
		t.Errorf("metadata %v", f.md)
	}
	img := f.cols[ColImage].(*array.Binary)
	if !bytes.Equal(img.Value(0), []byte{1, 2, 3}) || img.IsValid(1) || !bytes.Equal(img.Value(2), []byte{9}) {
		t.Errorf("image column %v", img)
	}
	if got := wtList[float32](t, f.cols[ColLatent], 1); !slices.Equal(got, rows[1].Latent) {
		t.Errorf("latent row 1 = %v", got)
	}
	if got := wtList[int32](t, f.cols[ColLatentShape], 1); !slices.Equal(got, []int32{1, 2, 3}) {
		t.Errorf("latent_shape row 1 = %v", got)
	}
	if f.cols[ColLatent].IsValid(0) || f.cols[ColLatentShape].IsValid(2) {
		t.Error("latent of an image row is not null")
	}
	if got := f.int32s(t, ColLabel); !slices.Equal(got, []int32{1, -999, 0}) {
		t.Errorf("labels %v", got)
	}
	if got := f.strings(t, ColCaption); !slices.Equal(got, []string{"red", "<null>", "<null>"}) {
		t.Errorf("captions %v", got)
	}
	if got := f.strings(t, ColID); !slices.Equal(got, []string{"x0", "<null>", "<null>"}) {
		t.Errorf("ids %v", got)
	}
	if got := wtList[float32](t, f.cols[ColTextEmbedding], 0); !slices.Equal(got, []float32{0.5, -1}) {
		t.Errorf("text_embedding row 0 = %v", got)
	}
	if e := f.cols[ColTextEmbedding]; e.IsValid(1) || !e.IsValid(2) || len(wtList[float32](t, e, 2)) != 0 {
		t.Error("text_embedding: nil must be null, empty must be an empty list")
	}
	sc := f.cols[ColScore].(*array.Float32)
	if sc.Value(0) != 2.5 || sc.IsValid(1) || sc.IsValid(2) {
		t.Errorf("scores %v", sc)
	}
	if got := f.int32s(t, ColWidth); !slices.Equal(got, []int32{4, 0, 0}) {
		t.Errorf("widths %v", got)
	}
	for _, fld := range f.rec.Schema().Fields() {
		required := fld.Name == ColWidth || fld.Name == ColHeight
		if fld.Nullable == required {
			t.Errorf("column %s: nullable = %v", fld.Name, fld.Nullable)
		}
	}
}

// TestWriterLayout: row-group sizes, the compression codec of every chunk, no dictionary on
// image and float lists, a dictionary (the default) on caption.
func TestWriterLayout(t *testing.T) {
	for name, codec := range map[string]compress.Compression{"": compress.Codecs.Zstd, "zstd": compress.Codecs.Zstd,
		"snappy": compress.Codecs.Snappy, "none": compress.Codecs.Uncompressed} {
		out := filepath.Join(t.TempDir(), "l.parquet")
		w, err := NewWriter(out, []string{ColImage, ColCaption, ColTextEmbedding, ColNoise}, WriterOptions{RowGroupRows: 16, Compression: name})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if err := w.Write(Row{Image: bytes.Repeat([]byte{byte(i)}, 100), Caption: MNISTClassNames[i%10], TextEmbedding: []float32{float32(i)}, Noise: []float32{float32(i), 0.5}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f := wtRead(t, out)
		md := f.pf.MetaData()
		var sizes []int64
		for rg := range md.NumRowGroups() {
			sizes = append(sizes, md.RowGroup(rg).NumRows())
			for c := range md.NumColumns() {
				cc, err := md.RowGroup(rg).ColumnChunk(c)
				if err != nil {
					t.Fatal(err)
				}
				path := cc.PathInSchema().String()
				if cc.Compression() != codec {
					t.Errorf("%q: row group %d column %s: compression %v, want %v", name, rg, path, cc.Compression(), codec)
				}
				// Uncompressed captions fall back to plain when a dictionary saves nothing
				// (arrow-go's first-page check), so only the "off" side is checked there.
				wantDict := path == ColCaption
				if cc.HasDictionaryPage() != wantDict && (!wantDict || codec != compress.Codecs.Uncompressed) {
					t.Errorf("%q: row group %d column %s: HasDictionaryPage = %v", name, rg, path, cc.HasDictionaryPage())
				}
			}
		}
		if !slices.Equal(sizes, []int64{16, 16, 16, 2}) {
			t.Errorf("%q: row group sizes %v", name, sizes)
		}
	}
}

func TestWriterShards(t *testing.T) {
	for _, tc := range []struct {
		rows, shardRows int
		want            []int
	}{{10, 4, []int{4, 4, 2}}, {8, 4, []int{4, 4}}, {3, 5, []int{3}}, {0, 5, []int{0}}} {
		dir := t.TempDir()
		out := filepath.Join(dir, "out.parquet")
		w, err := NewWriter(out, []string{ColImage, ColID}, WriterOptions{ShardRows: tc.shardRows, RowGroupRows: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.rows {
			if err := w.Write(Row{Image: []byte{byte(i)}, ID: string(rune('a' + i))}); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 && !strings.HasPrefix(entries[0].Name(), ".") {
				t.Fatalf("%+v: %s visible before Close", tc, entries[0].Name())
			}
		}
		paths, n, err := w.Close()
		if err != nil || n != tc.rows || len(paths) != len(tc.want) {
			t.Fatalf("%+v: Close = %v, %d, %v", tc, paths, n, err)
		}
		id := 0
		for i, p := range paths {
			if want := filepath.Join(dir, "out-0000"+string(rune('0'+i))+"-of-0000"+string(rune('0'+len(tc.want)))+".parquet"); p != want {
				t.Errorf("%+v: shard %d is %s, want %s", tc, i, p, want)
			}
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
				t.Errorf("%s: stat %v, %v; want mode 0644", p, st.Mode(), err)
			}
			f := wtRead(t, p)
			if f.md[MetaSchemaVersion] != SchemaVersion {
				t.Errorf("%s: metadata %v", p, f.md)
			}
			if tc.want[i] == 0 {
				continue
			}
			for _, s := range f.strings(t, ColID) {
				if s != string(rune('a'+id)) {
					t.Errorf("%+v: %s: id %s, want %c", tc, p, s, 'a'+id)
				}
				id++
			}
			if got := f.rec.NumRows(); got != int64(tc.want[i]) {
				t.Errorf("%+v: %s: %d rows, want %d", tc, p, got, tc.want[i])
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != len(tc.want) {
			t.Errorf("%+v: %d directory entries, want only the shards", tc, len(entries))
		}
		if ShardPath("a/b.parquet", 3, 12) != "a/b-00003-of-00012.parquet" || ShardPath("c", 0, 1) != "c-00000-of-00001.parquet" {
			t.Error("ShardPath")
		}
	}
}

// TestWriterAtomicOnError: a failing Write or an Abort leaves no file (not even completed
// shards or temporary files) behind.
func TestWriterAtomicOnError(t *testing.T) {
	for _, shardRows := range []int{0, 2} {
		for _, abort := range []bool{false, true} {
			dir := t.TempDir()
			w, err := NewWriter(filepath.Join(dir, "o.parquet"), []string{ColImage}, WriterOptions{ShardRows: shardRows})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if err := w.Write(Row{Image: []byte{byte(i)}}); err != nil {
					t.Fatal(err)
				}
			}
			var werr error
			if abort {
				w.Abort()
			} else if werr = w.Write(Row{Image: []byte{1}, Caption: "x"}); werr == nil || !strings.Contains(werr.Error(), "row 5") {
				t.Errorf("row with a caption but no caption column: err = %v", werr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("shardRows=%d abort=%v: %d entries left (%s)", shardRows, abort, len(entries), entries[0].Name())
			}
			if err := w.Write(Row{Image: []byte{1}}); err == nil {
				t.Error("Write after failure succeeded")
			}
			if paths, _, err := w.Close(); err == nil || paths != nil {
				t.Errorf("Close after failure = %v, %v", paths, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("shardRows=%d: Close after failure left %d entries", shardRows, len(entries))
			}
		}
	}
}

func TestWriterErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "e.parquet")
	for _, tc := range []struct {
		cols []string
		opts WriterOptions
		want string
	}{
		{[]string{ColImage, "pixels"}, WriterOptions{}, `unknown column "pixels"`},
		{[]string{ColLabel}, WriterOptions{}, "want image or latent"},
		{[]string{ColLatent}, WriterOptions{}, "go together"},
		{[]string{ColImage, ColImage}, WriterOptions{}, "twice"},
		{[]string{ColImage}, WriterOptions{Compression: "gzip"}, `compression "gzip"`},
		{[]string{ColImage}, WriterOptions{RowGroupRows: -1}, "row group size -1"},
		{[]string{ColImage}, WriterOptions{ShardRows: -3}, "shard rows -3"},
	} {
		if _, err := NewWriter(out, tc.cols, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), out) {
			t.Errorf("NewWriter(%v, %+v): err = %v, want %q", tc.cols, tc.opts, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cols []string
		row  Row
		want string
	}{
		{[]string{ColImage}, Row{}, "neither an image nor a latent"},
		{[]string{ColImage}, Row{Image: []byte{1}, HasLabel: true}, "no label column"},
		{[]string{ColImage}, Row{Image: []byte{1}, HasScore: true}, "no score column"},
		{[]string{ColImage, ColLatent, ColLatentShape}, Row{Image: []byte{1}, Latent: []float32{1}, LatentShape: []int32{1}}, "both"},
		{[]string{ColLatent, ColLatentShape}, Row{Latent: []float32{1, 2, 3}, LatentShape: []int32{2, 2}}, "3 values, shape [2 2]"},
		{[]string{ColLatent, ColLatentShape}, Row{Latent: []float32{}, LatentShape: []int32{0}}, "positive"},
		{[]string{ColImage, ColScore}, Row{Image: []byte{1}, Score: float32(math.NaN()), HasScore: true}, "not finite"},
	} {
		w, err := NewWriter(out, tc.cols, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(tc.row); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "row 0") {
			t.Errorf("Write(%+v): err = %v, want %q", tc.row, err, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("failed writers left the output file")
	}
}

// TestWriterProgressPlain: a non-terminal Progress gets one line per quarter.
func TestWriterProgressPlain(t *testing.T) {
	var log bytes.Buffer
	w, err := NewWriter(filepath.Join(t.TempDir(), "p.parquet"), []string{ColImage}, WriterOptions{Progress: &log, Total: 8})
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if err := w.Write(Row{Image: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "25%  2/8 rows") || !strings.Contains(lines[3], "100%  8/8 rows") || strings.Contains(log.String(), "\r") {
		t.Errorf("progress:\n%s", log.String())
	}
}

// TestWriteImageParquetV1: the version-1 helper still writes version "1" files.
func TestWriteImageParquetV1(t *testing.T) {
	out := filepath.Join(t.TempDir(), "v1.parquet")
	rows := []imageRow{{PNG: []byte{1}, Label: 3, Caption: "three", Width: 1, Height: 1}}
	if err := writeImageParquet(out, rows, MNISTClassNames, 4); err != nil {
		t.Fatal(err)
	}
	f := wtRead(t, out)
	var names []string
	if f.md[MetaSchemaVersion] != "1" || json.Unmarshal([]byte(f.md[MetaClassNames]), &names) != nil || len(names) != 10 {
		t.Errorf("metadata %v", f.md)
	}
	if !slices.Equal(f.names(), []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight}) || f.int32s(t, ColLabel)[0] != 3 {
		t.Errorf("columns %v labels %v", f.names(), f.int32s(t, ColLabel))
	}
}

// TestWriterRowGroupBytes: a row group ends early once it holds maxRowGroupBytes.
func TestWriterRowGroupBytes(t *testing.T) {
	defer func(v int) { maxRowGroupBytes = v }(maxRowGroupBytes)
	maxRowGroupBytes = 1000
	for _, tc := range []struct {
		rowGroup int
		want     []int64
	}{{0, []int64{4, 4, 4, 4, 4, 1}}, {3, []int64{3, 3, 3, 3, 3, 3, 3}}, {6, []int64{4, 4, 4, 4, 4, 1}}} {
		out := filepath.Join(t.TempDir(), "b.parquet")
		w, err := NewWriter(out, []string{ColImage}, WriterOptions{RowGroupRows: tc.rowGroup})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 21 {
			if err := w.Write(Row{Image: bytes.Repeat([]byte{byte(i)}, 300-16)}); err != nil { // rowBytes 300
				t.Fatal(err)
			}
		}
		if _, _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		md := wtRead(t, out).pf.MetaData()
		var sizes []int64
		for rg := range md.NumRowGroups() {
			sizes = append(sizes, md.RowGroup(rg).NumRows())
		}
		if !slices.Equal(sizes, tc.want) {
			t.Errorf("row group rows %d: sizes %v, want %v", tc.rowGroup, sizes, tc.want)
		}
	}
}
