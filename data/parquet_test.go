package data

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func TestImportMNISTLoadRoundTrip(t *testing.T) {
	const n = 300 // > 2 × 64 rows per batch so that decoding runs on several workers
	f := writeMNISTFixture(t, "train", n, true)
	out := filepath.Join(t.TempDir(), "nested", "dir", "train.parquet")
	got, err := ImportMNIST(f.dir, "train", out)
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("ImportMNIST wrote %d rows, want %d", got, n)
	}
	for _, tc := range []struct{ size, channels, readBatch int }{
		{32, 1, 4096}, {32, 1, 7}, {28, 1, 100}, {31, 3, 64}, {40, 3, 4096},
	} {
		cfg := DefaultConfig()
		cfg.ImageSize, cfg.Channels, cfg.ReadBatchRows = tc.size, tc.channels, tc.readBatch
		ds, err := Load(out, cfg)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if ds.N != n || ds.H != tc.size || ds.W != tc.size || ds.C != tc.channels || ds.Path != out {
			t.Fatalf("%+v: dataset N=%d H=%d W=%d C=%d Path=%s", tc, ds.N, ds.H, ds.W, ds.C, ds.Path)
		}
		if len(ds.Pixels) != n*tc.size*tc.size*tc.channels {
			t.Fatalf("%+v: len(Pixels) = %d", tc, len(ds.Pixels))
		}
		for i := range n {
			if ds.Labels[i] != int32(f.labels[i]) {
				t.Fatalf("%+v: row %d: label %d, want %d", tc, i, ds.Labels[i], f.labels[i])
			}
			checkPadded(t, i, ds.Image(i), f.images[i], 28, 28, tc.size, tc.channels)
		}
		if !slices.Equal(ds.ClassNames, MNISTClassNames) {
			t.Errorf("ClassNames = %v, want %v", ds.ClassNames, MNISTClassNames)
		}
	}
	cfg := DefaultConfig()
	cfg.ImageSize = 27
	if _, err := Load(out, cfg); err == nil || !strings.Contains(err.Error(), out) ||
		!strings.Contains(err.Error(), "column image, row 0") || !strings.Contains(err.Error(), "data.image_size 27") {
		t.Errorf("image larger than ImageSize: err = %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("output dir holds %d entries, want only the Parquet file (no temp files left)", len(entries))
	}
}

// TestImportMNISTFileLayout checks row groups, encodings, compression, metadata and the
// caption/width/height columns of an imported file.
func TestImportMNISTFileLayout(t *testing.T) {
	const n, rowGroupRows = 50, 16
	f := writeMNISTFixture(t, "test", n, false)
	out := filepath.Join(t.TempDir(), "test.parquet")
	if _, err := importMNIST(f.dir, "test", out, rowGroupRows); err != nil {
		t.Fatal(err)
	}
	pf, err := file.OpenParquetFile(out, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	md := pf.MetaData()
	sizes := checkColumnChunks(t, md)
	if want := []int64{16, 16, 16, 2}; !slices.Equal(sizes, want) {
		t.Errorf("row group sizes %v, want %v", sizes, want)
	}
	kv := md.KeyValueMetadata()
	if v := kv.FindValue("fewstep.schema_version"); v == nil || *v != SchemaVersion {
		t.Errorf("fewstep.schema_version = %v", v)
	}
	var names []string
	if v := kv.FindValue("fewstep.class_names"); v == nil || json.Unmarshal([]byte(*v), &names) != nil || !slices.Equal(names, MNISTClassNames) {
		t.Errorf("fewstep.class_names = %v", v)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, n)
	defer tr.Release()
	tr.Next()
	rec := tr.RecordBatch()
	captions := rec.Column(2).(*array.String)
	widths, heights := rec.Column(3).(*array.Int32), rec.Column(4).(*array.Int32)
	for i := range n {
		if captions.Value(i) != MNISTCaptions(int(f.labels[i]))[i%5] || widths.Value(i) != 28 || heights.Value(i) != 28 {
			t.Fatalf("row %d: caption %q width %d height %d", i, captions.Value(i), widths.Value(i), heights.Value(i))
		}
	}
}

// checkColumnChunks checks compression and dictionary use of every column chunk and
// returns the number of rows of each row group.
func checkColumnChunks(t *testing.T, md *metadata.FileMetaData) []int64 {
	t.Helper()
	var sizes []int64
	for rg := range md.NumRowGroups() {
		sizes = append(sizes, md.RowGroup(rg).NumRows())
		for c := range md.NumColumns() {
			cc, err := md.RowGroup(rg).ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Compression() != compress.Codecs.Zstd {
				t.Errorf("row group %d column %s: compression %v, want zstd", rg, cc.PathInSchema(), cc.Compression())
			}
			// Only the image column opts out of dictionary encoding (the default).
			if name := cc.PathInSchema().String(); (name == ColImage) == cc.HasDictionaryPage() {
				t.Errorf("row group %d column %s: HasDictionaryPage = %v", rg, name, cc.HasDictionaryPage())
			}
		}
	}
	return sizes
}

// writeRows writes rows with writeImageParquet into a temp file and returns its path.
func writeRows(t *testing.T, rows []imageRow, classNames []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fixture.parquet")
	if err := writeImageParquet(path, rows, classNames, 4); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadErr loads path with 3-row record batches and returns the error text.
func loadErr(t *testing.T, path string) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ReadBatchRows = 3
	_, err := Load(path, cfg)
	if err == nil {
		t.Fatalf("Load(%s) succeeded, want an error", path)
	}
	return err.Error()
}

func TestLoadErrorsNameFileColumnRow(t *testing.T) {
	rows := grayRows(t, 20)
	rows[11].PNG = []byte("\x89PNG\r\n\x1a\n truncated")
	path := writeRows(t, rows, nil)
	msg := loadErr(t, path)
	t.Logf("corrupt PNG: %s", msg)
	if !strings.Contains(msg, path) || !strings.Contains(msg, "column image, row 11") || !strings.Contains(msg, "png") {
		t.Errorf("corrupt PNG: error %q, want file, column image, row 11", msg)
	}

	for _, bad := range []int32{10, -1} {
		rows = grayRows(t, 20)
		rows[7].Label = bad
		rows[13].PNG = []byte("not an image") // a later corrupt image must not mask the label error
		path = writeRows(t, rows, MNISTClassNames)
		msg := loadErr(t, path)
		t.Logf("label %d: %s", bad, msg)
		if !strings.Contains(msg, path) || !strings.Contains(msg, "column label, row 7") || !strings.Contains(msg, "data.num_classes") {
			t.Errorf("label %d: error %q, want file, column label, row 7", bad, msg)
		}
	}

	notParquet := filepath.Join(t.TempDir(), "garbage.parquet")
	os.WriteFile(notParquet, []byte("this is not a parquet file at all"), 0o644)
	if msg := loadErr(t, notParquet); !strings.Contains(msg, notParquet) {
		t.Errorf("not parquet: error %q does not name the file", msg)
	}
	if msg := loadErr(t, filepath.Join(t.TempDir(), "missing.parquet")); !strings.Contains(msg, "missing.parquet") {
		t.Errorf("missing file: error %q does not name the file", msg)
	}
	cfg := DefaultConfig()
	cfg.Channels = 2
	if _, err := Load(path, cfg); err == nil || !strings.Contains(err.Error(), "data.channels") {
		t.Errorf("bad config: err = %v", err)
	}
}

// TestLoadColourAndShapes decodes RGBA, RGB-like and gray PNGs of non-square sizes.
func TestLoadColourAndShapes(t *testing.T) {
	px := color.NRGBA{R: 200, G: 100, B: 50, A: 255}
	half := color.NRGBA{R: 200, G: 100, B: 50, A: 128} // composited over black
	rgba := image.NewNRGBA(image.Rect(0, 0, 5, 3))     // width 5, height 3
	for y := range 3 {
		for x := range 5 {
			rgba.SetNRGBA(x, y, px)
		}
	}
	rgba.SetNRGBA(0, 0, half)
	rgba.SetNRGBA(4, 2, color.NRGBA{R: 255, G: 255, B: 255, A: 0})
	gray := image.NewGray(image.Rect(0, 0, 2, 4))
	for k := range gray.Pix {
		gray.Pix[k] = uint8(40 * (k + 1))
	}
	rows := []imageRow{{PNG: encodePNG(t, rgba), Label: 1}, {PNG: encodePNG(t, gray), Label: 2}}
	path := writeRows(t, rows, nil)

	cfg := DefaultConfig()
	cfg.ImageSize, cfg.Channels = 8, 3
	ds, err := Load(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ds.ClassNames != nil {
		t.Errorf("ClassNames = %v, want nil when the file has none", ds.ClassNames)
	}
	at := func(i, y, x int) []uint8 { o := ((i*8+y)*8 + x) * 3; return ds.Pixels[o : o+3] }
	// Image 0 is 5 wide, 3 high: top (8-3)/2 = 2, left (8-5)/2 = 1.
	if got := at(0, 2, 1); !slices.Equal(got, []uint8{100, 50, 25}) {
		t.Errorf("half-transparent pixel = %v, want premultiplied [100 50 25]", got)
	}
	if got := at(0, 3, 2); !slices.Equal(got, []uint8{200, 100, 50}) {
		t.Errorf("opaque pixel = %v, want [200 100 50]", got)
	}
	if got := at(0, 4, 5); !slices.Equal(got, []uint8{0, 0, 0}) {
		t.Errorf("transparent pixel = %v, want black", got)
	}
	if got := at(0, 1, 1); !slices.Equal(got, []uint8{0, 0, 0}) {
		t.Errorf("padding above = %v, want black", got)
	}
	// Image 1 is 2 wide, 4 high: top 2, left 3; gray replicated to 3 channels.
	checkPadded(t, 1, ds.Image(1), gray.Pix, 2, 4, 8, 3)

	cfg.Channels = 1
	if ds, err = Load(path, cfg); err != nil {
		t.Fatal(err)
	}
	wantY := color.GrayModel.Convert(px).(color.Gray).Y
	if got := ds.Image(0)[3*8+2]; got != wantY {
		t.Errorf("opaque pixel luma = %d, want %d", got, wantY)
	}
	checkPadded(t, 1, ds.Image(1), gray.Pix, 2, 4, 8, 1)
}

func TestLoadEmptyFile(t *testing.T) {
	path := writeRows(t, nil, MNISTClassNames)
	ds, err := Load(path, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ds.N != 0 || len(ds.Pixels) != 0 || len(ds.Labels) != 0 {
		t.Errorf("empty file: N=%d, %d pixels, %d labels", ds.N, len(ds.Pixels), len(ds.Labels))
	}
	if _, err := NewLoader(ds, 4, 0); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("NewLoader(empty dataset): err = %v, want it to name %s", err, path)
	}
}

// TestOpenBadInput: every dataset problem that needs no image decoding fails in Open with
// an error naming the file (or glob) and the column.
func TestOpenBadInput(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, f fixture) string {
		p := filepath.Join(dir, name)
		writeFixture(t, p, f)
		return p
	}
	good := file("good.parquet", fixture{n: 30, groupRows: 10})
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.parquet")
	os.WriteFile(truncated, raw[:len(raw)/2], 0o644)
	cutFooter := filepath.Join(dir, "cut-footer.parquet")
	os.WriteFile(cutFooter, raw[:len(raw)-3], 0o644)
	hole := filepath.Join(dir, "hole.parquet") // footer intact, some data missing
	os.WriteFile(hole, slices.Concat(raw[:len(raw)/3], raw[len(raw)/2:]), 0o644)
	footerLen := int(binary.LittleEndian.Uint32(raw[len(raw)-8:])) + 8
	dataOnly := filepath.Join(dir, "footer-only.parquet") // footer intact, all data missing
	os.WriteFile(dataOnly, slices.Concat(raw[:4], raw[len(raw)-footerLen:]), 0o644)
	garbage := filepath.Join(dir, "garbage.parquet")
	os.WriteFile(garbage, []byte("PAR1 this is not a parquet file at all PAR1"), 0o644)
	nullLabel := file("null-label.parquet", fixture{n: 9, groupRows: 4, label: func(id int) (int32, bool) { return 0, id != 6 }})
	cases := []struct {
		name  string
		train string
		edit  func(*Config)
		want  []string
	}{
		{"glob matches nothing", filepath.Join(dir, "nothing-*.parquet"), nil, []string{"data.train", "nothing-*.parquet", "matches no file"}},
		{"one glob of two matches nothing", good + "," + filepath.Join(dir, "typo.parquet"), nil, []string{"typo.parquet", "matches no file"}},
		{"missing column", file("no-label.parquet", fixture{n: 5, groupRows: 5, noLabel: true}), nil, []string{"no-label.parquet", "column label", "not in the file"}},
		{"mistyped column", file("string-label.parquet", fixture{n: 5, groupRows: 5, labelAsString: true}), nil, []string{"string-label.parquet", "column label", "type utf8", "want int32"}},
		{"missing caption", good, func(c *Config) { c.CaptionContains = "fox" }, []string{"good.parquet", "column caption", "not in the file"}},
		{"missing score", good, func(c *Config) { c.TopK = 3 }, []string{"good.parquet", "column score"}},
		{"missing embedding", good, func(c *Config) { c.Condition = ConditionTextEmbedding }, []string{"good.parquet", "column text_embedding"}},
		{"missing vocabulary", file("captions.parquet", fixture{n: 5, groupRows: 5, caption: func(int) string { return "x" }}),
			func(c *Config) { c.Condition = ConditionCaption }, []string{"captions.parquet", MetaVocab, "missing"}},
		{"empty file", file("empty.parquet", fixture{}), nil, []string{"empty.parquet", "empty dataset", "0 rows"}},
		{"filters leave nothing", file("zeros.parquet", fixture{n: 8, groupRows: 3, label: func(int) (int32, bool) { return 0, true }}),
			func(c *Config) { c.Labels = []int{1, 2} }, []string{"zeros.parquet", "empty dataset", "8 rows", "data.labels [1 2]"}},
		{"truncated file", truncated, nil, []string{truncated, "truncated or corrupt"}},
		{"file without its last bytes", cutFooter, nil, []string{cutFooter, "truncated or corrupt"}},
		{"file with a hole", hole, nil, []string{hole, "row group"}},
		{"file without its data", dataOnly, nil, []string{dataOnly, "beyond the file", "truncated file"}},
		{"not parquet", garbage, nil, []string{garbage}},
		{"truncated among good files", good + "," + truncated, nil, []string{truncated}},
		{"null label", nullLabel, nil, []string{"null-label.parquet", "column label, row 6", "null label"}},
		{"label out of range", file("label-10.parquet", fixture{n: 7, groupRows: 3, label: func(id int) (int32, bool) { return int32(id * 2), true }}),
			nil, []string{"label-10.parquet", "column label, row 2", "data.num_classes"}},
		{"image wider than image_size", file("wide.parquet", fixture{n: 4, groupRows: 4, width: func(id int) int32 { return int32(3 + id) }}),
			nil, []string{"wide.parquet", "column width, row 2", "data.image_size 4"}},
		{"class names disagree", file("names-a.parquet", fixture{n: 3, groupRows: 3, classNames: []string{"a", "b", "c"}}) + "," +
			file("names-b.parquet", fixture{n: 3, groupRows: 3, classNames: []string{"a", "b", "d"}}), nil, []string{"names-b.parquet", MetaClassNames, "names-a.parquet"}},
		{"future schema version", file("v3.parquet", fixture{n: 3, groupRows: 3, meta: map[string]string{MetaSchemaVersion: "3"}}), nil, []string{"v3.parquet", MetaSchemaVersion, `"3"`}},
		{"bad config", good, func(c *Config) { c.Workers = 0 }, []string{"data.workers"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := idConfig(tc.train)
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			s, err := Open(cfg, 4, 0)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded", tc.train)
			}
			t.Logf("%v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := Open(idConfig(good), 0, 0); err == nil || !strings.Contains(err.Error(), "batch size") {
		t.Errorf("batch size 0: err = %v", err)
	}
}

// TestOpenEmptyClassNamesMix: a file whose class-name list is empty (written by a generator
// whose teacher had none) names nothing, so it mixes with a file that has names, whose names the
// stream keeps, in either order.
func TestOpenEmptyClassNamesMix(t *testing.T) {
	dir := t.TempDir()
	named, empty := filepath.Join(dir, "named.parquet"), filepath.Join(dir, "empty.parquet")
	writeFixture(t, named, fixture{n: 3, groupRows: 3, classNames: []string{"a", "b", "c"}})
	writeFixture(t, empty, fixture{n: 3, groupRows: 3, classNames: []string{}})
	for _, train := range []string{named + "," + empty, empty + "," + named} {
		s, err := Open(idConfig(train), 4, 0)
		if err != nil {
			t.Fatalf("Open(%s): %v", train, err)
		}
		if got := s.Info().ClassNames; !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("Open(%s): class names %q, want [a b c]", train, got)
		}
		s.Close()
	}
	s, err := Open(idConfig(empty), 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Info().ClassNames; got != nil {
		t.Errorf("empty list alone: class names %q, want none", got)
	}
	s.Close()
}

// TestLoadReadsV2Files: the v1 Load reads the image and label columns of a schema-v2 file.
func TestLoadReadsV2Files(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.parquet")
	writeFixture(t, path, fixture{n: 6, groupRows: 4, score: func(int) float32 { return 1 }, caption: func(int) string { return "c" }})
	cfg := idConfig(path)
	ds, err := Load(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ds.N {
		if img := ds.Image(i); int(img[0])|int(img[1])<<8 != i || ds.Labels[i] != int32(i%3) {
			t.Errorf("row %d: pixels %v label %d", i, img[:2], ds.Labels[i])
		}
	}
}
