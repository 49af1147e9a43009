package data

import (
	"bytes"
	"context"
	"errors"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// checker returns an h×w ±1 checkerboard.
func checker(h, w int) []float32 {
	x := make([]float32, h*w)
	for i := range x {
		x[i] = 1
		if (i/w+i%w)%2 == 1 {
			x[i] = -1
		}
	}
	return x
}

func TestSharpnessByHand(t *testing.T) {
	flat := slices.Repeat([]float32{0.3}, 20)
	ramp := make([]float32, 12) // 3×4, x = 0.1·column
	for i := range ramp {
		ramp[i] = 0.1 * float32(i%4)
	}
	odd := checker(3, 5) // 8 pixels +1, 7 pixels −1
	for _, tc := range []struct {
		name     string
		x        []float32
		h, w     int
		g, c     float64
		tolerate float64
	}{
		{"flat", flat, 4, 5, 0, 0, 0},
		{"checkerboard 4×6", checker(4, 6), 4, 6, 8, 1, 0},
		{"checkerboard 3×5", odd, 3, 5, 8, math.Sqrt(1 - 1.0/225), 1e-12},
		{"ramp", ramp, 3, 4, 0.01, math.Sqrt(0.0125), 1e-7},
		{"one pixel", []float32{0.5}, 1, 1, 0, 0, 0},
		{"one row", []float32{-1, 1, -1}, 1, 3, 4, math.Sqrt(8.0 / 9), 1e-12},
	} {
		g, c := GradientEnergy(tc.x, tc.h, tc.w), RMSContrast(tc.x)
		if math.Abs(g-tc.g) > tc.tolerate || math.Abs(c-tc.c) > tc.tolerate {
			t.Errorf("%s: gradient energy %v, contrast %v; want %v, %v", tc.name, g, c, tc.g, tc.c)
		}
		if s := Sharpness(tc.x, tc.h, tc.w); s != g+c {
			t.Errorf("%s: Sharpness %v, want %v + %v", tc.name, s, g, c)
		}
	}
}

// boxBlur returns x: [h, w] blurred by a 3×3 mean (the window clamped at the borders).
func boxBlur(x []float32, h, w int) []float32 {
	out := make([]float32, len(x))
	for y := range h {
		for i := range w {
			var sum float32
			var n int
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if yy, xx := y+dy, i+dx; yy >= 0 && yy < h && xx >= 0 && xx < w {
						sum += x[yy*w+xx]
						n++
					}
				}
			}
			out[y*w+i] = sum / float32(n)
		}
	}
	return out
}

func TestSharpnessBlurLowers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, x := range [][]float32{checker(8, 8), func() []float32 {
		x := make([]float32, 64)
		for i := range x {
			x[i] = float32(2*rng.Float64() - 1)
		}
		return x
	}()} {
		b := boxBlur(x, 8, 8)
		if GradientEnergy(b, 8, 8) >= GradientEnergy(x, 8, 8) || RMSContrast(b) >= RMSContrast(x) || Sharpness(b, 8, 8) >= Sharpness(x, 8, 8) {
			t.Errorf("blurred: G %v, C %v; original: G %v, C %v", GradientEnergy(b, 8, 8), RMSContrast(b), GradientEnergy(x, 8, 8), RMSContrast(x))
		}
	}
}

// scoreSide is the side of scoreFixture's images.
const scoreSide = 6

// scoreFixturePixels returns row i's 6×6 gray image: flat (i%3 = 0), a checkerboard of 0/255
// (i%3 = 1) or noise (i%3 = 2).
func scoreFixturePixels(i int) []uint8 {
	px := make([]uint8, scoreSide*scoreSide)
	rng := rand.New(rand.NewPCG(uint64(i), 9))
	for k := range px {
		switch i % 3 {
		case 0:
			px[k] = uint8(40 + i)
		case 1:
			px[k] = uint8(255 * ((k/scoreSide + k%scoreSide) % 2))
		default:
			px[k] = uint8(rng.IntN(256))
		}
	}
	return px
}

// scoreFixture writes 21 rows in row groups of 8 with NewWriter (image, label i%3 with row 5
// unlabelled, caption, width, height, id) and returns its path.
func scoreFixture(t *testing.T) string {
	t.Helper()
	opts := WriterOptions{RowGroupRows: 8, ClassNames: []string{"flat", "checker", "noise"}, Vocab: BuildVocab([]string{"row"}, 0)}
	path := filepath.Join(t.TempDir(), "in.parquet")
	w, err := NewWriter(path, []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight, ColID}, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 21 {
		g := image.NewGray(image.Rect(0, 0, scoreSide, scoreSide))
		copy(g.Pix, scoreFixturePixels(i))
		r := Row{Image: encodePNG(t, g), Label: int32(i % 3), HasLabel: i != 5, Caption: "row " + string(rune('a'+i)),
			Width: scoreSide, Height: scoreSide, ID: "id-" + string(rune('a'+i))}
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// parquetFile is a whole Parquet file read back: its table, metadata and row-group sizes.
type parquetFile struct {
	tbl    arrow.Table
	kv     map[string]string
	keys   []string
	groups []int64
}

func readParquet(t *testing.T, path string) parquetFile {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tbl.Release)
	out := parquetFile{tbl: tbl, kv: map[string]string{}}
	md := pf.MetaData()
	for i, k := range md.KeyValueMetadata().Keys() {
		out.kv[k] = md.KeyValueMetadata().Values()[i]
		out.keys = append(out.keys, k)
	}
	for g := range md.NumRowGroups() {
		out.groups = append(out.groups, md.RowGroup(g).NumRows())
	}
	return out
}

// col returns the named column of f.
func (f parquetFile) col(t *testing.T, name string) *arrow.Chunked {
	t.Helper()
	idx := f.tbl.Schema().FieldIndices(name)
	if len(idx) == 0 {
		t.Fatalf("no column %s in %v", name, f.tbl.Schema())
	}
	return f.tbl.Column(idx[0]).Data()
}

// scoreBits returns the float32 score column as bit patterns (nulls as -1).
func (f parquetFile) scoreBits(t *testing.T) []int64 {
	t.Helper()
	var bits []int64
	for _, a := range f.col(t, ColScore).Chunks() {
		fa := a.(*array.Float32)
		for i := range fa.Len() {
			if fa.IsNull(i) {
				bits = append(bits, -1)
			} else {
				bits = append(bits, int64(math.Float32bits(fa.Value(i))))
			}
		}
	}
	return bits
}

// TestScoreFileSharpness: the output keeps every row, row group, column and metadata entry,
// adds the score before id with each image's sharpness, and two runs write identical files.
func TestScoreFileSharpness(t *testing.T) {
	in := scoreFixture(t)
	dir := t.TempDir()
	out1, out2 := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "sub", "b.parquet")
	sum, err := ScoreFile(in, out1, SharpnessScorer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ScoreFile(in, out2, SharpnessScorer, nil); err != nil {
		t.Fatal(err)
	}
	src, got := readParquet(t, in), readParquet(t, out1)
	if sum.Rows != 21 || len(sum.Scores) != 21 || got.tbl.NumRows() != 21 {
		t.Fatalf("summary %d rows, %d scores; file %d rows", sum.Rows, len(sum.Scores), got.tbl.NumRows())
	}
	if !slices.Equal(got.groups, src.groups) || !slices.Equal(got.groups, []int64{8, 8, 5}) {
		t.Errorf("row groups %v, input %v", got.groups, src.groups)
	}
	if !slices.Equal(got.keys, src.keys) {
		t.Errorf("metadata keys %v, input %v", got.keys, src.keys)
	}
	for k, v := range src.kv {
		if got.kv[k] != v {
			t.Errorf("metadata %s = %q, input %q", k, got.kv[k], v)
		}
	}
	var names []string
	for _, f := range got.tbl.Schema().Fields() {
		names = append(names, f.Name)
	}
	if want := []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight, ColScore, ColID}; !slices.Equal(names, want) {
		t.Errorf("columns %v, want %v", names, want)
	}
	for _, name := range []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight, ColID} {
		if !array.ChunkedEqual(got.col(t, name), src.col(t, name)) {
			t.Errorf("column %s differs from the input", name)
		}
	}
	bits := got.scoreBits(t)
	for i, b := range bits {
		x := make([]float32, scoreSide*scoreSide)
		for k, p := range scoreFixturePixels(i) {
			x[k] = float32(p)/127.5 - 1
		}
		if want := float32(Sharpness(x, scoreSide, scoreSide)); b != int64(math.Float32bits(want)) {
			t.Errorf("row %d: score %v, want sharpness %v", i, math.Float32frombits(uint32(b)), want)
		}
	}
	if bits[0] != int64(math.Float32bits(0)) || math.Float32frombits(uint32(bits[1])) != 9 {
		t.Errorf("flat row scores %v, checkerboard row %v; want 0 and 9", math.Float32frombits(uint32(bits[0])), math.Float32frombits(uint32(bits[1])))
	}
	if !slices.Equal(readParquet(t, out2).scoreBits(t), bits) {
		t.Error("second run: different score column")
	}
	b1, _ := os.ReadFile(out1)
	b2, _ := os.ReadFile(out2)
	if !bytes.Equal(b1, b2) {
		t.Error("two runs wrote different bytes")
	}
	if !strings.HasPrefix(sum.Quantiles(), "scores: 21  min 0 ") {
		t.Errorf("quantiles %q", sum.Quantiles())
	}
}

// customFixture writes, with pqarrow directly (and an ARROW:schema), rows with an image, a
// float64 score (to be replaced), a float32 "aesthetic" with nulls and a NaN, an int64
// "rating" and a string "note", and no label; it returns the path and the aesthetic values.
func customFixture(t *testing.T) (string, []float32, []bool) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: ColImage, Type: arrow.BinaryTypes.Binary},
		{Name: ColScore, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "aesthetic", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "rating", Type: arrow.PrimitiveTypes.Int64},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	aesthetic := []float32{0.1, 1e-8, -3.25, 7, float32(math.NaN()), 0, 16777217, 2.5, -0.0, 1.0 / 3}
	valid := []bool{true, true, false, true, true, true, true, false, true, true}
	for i, v := range aesthetic {
		b.Field(0).(*array.BinaryBuilder).Append(idPNG(t, i))
		b.Field(1).(*array.Float64Builder).Append(float64(i) / 7)
		b.Field(2).(*array.Float32Builder).AppendValues([]float32{v}, []bool{valid[i]})
		b.Field(3).(*array.Int64Builder).Append(int64(100*i - 300))
		b.Field(4).(*array.StringBuilder).Append("n" + string(rune('a'+i)))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	path := filepath.Join(t.TempDir(), "custom.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(4)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	fw.AppendKeyValueMetadata("user.note", "kept")
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return path, aesthetic, valid
}

// TestScoreFileColumn: column:NAME copies float32 values bit for bit (nulls and NaN give
// nulls), integers exactly, replaces a float64 score column in place; a missing or
// non-numeric column is an error naming file and column.
func TestScoreFileColumn(t *testing.T) {
	in, aesthetic, valid := customFixture(t)
	out := filepath.Join(t.TempDir(), "out.parquet")
	if _, err := ScoreFile(in, out, ColumnScorer("aesthetic"), nil); err != nil {
		t.Fatal(err)
	}
	got := readParquet(t, out)
	if f := got.tbl.Schema().Field(1); f.Name != ColScore || f.Type.ID() != arrow.FLOAT32 || !f.Nullable {
		t.Errorf("field 1 is %v, want the nullable float32 score in place", f)
	}
	for i, b := range got.scoreBits(t) {
		want := int64(math.Float32bits(aesthetic[i]))
		if !valid[i] || math.IsNaN(float64(aesthetic[i])) {
			want = -1
		}
		if b != want {
			t.Errorf("row %d: score bits %x, want %x (aesthetic %v, valid %v)", i, b, want, aesthetic[i], valid[i])
		}
	}
	src := readParquet(t, in)
	for _, name := range []string{ColImage, "aesthetic", "rating", "note"} { // NaN = NaN, no tolerance
		if !array.ChunkedApproxEqual(got.col(t, name), src.col(t, name), array.WithNaNsEqual(true), array.WithAbsTolerance(0)) {
			t.Errorf("column %s differs from the input", name)
		}
	}
	if got.kv["user.note"] != "kept" || got.kv[MetaSchemaVersion] != SchemaVersion || got.kv["ARROW:schema"] == "" {
		t.Errorf("metadata %v", got.kv)
	}
	if !slices.Equal(got.groups, []int64{4, 4, 2}) {
		t.Errorf("row groups %v, want [4 4 2]", got.groups)
	}
	if _, err := ScoreFile(in, out, ColumnScorer("rating"), nil); err != nil {
		t.Fatal(err)
	}
	for i, b := range readParquet(t, out).scoreBits(t) {
		if want := float32(100*i - 300); b != int64(math.Float32bits(want)) {
			t.Errorf("rating row %d: score %v, want %v", i, math.Float32frombits(uint32(b)), want)
		}
	}
	for _, name := range []string{"note", "missing"} {
		_, err := ScoreFile(in, out, ColumnScorer(name), nil)
		if err == nil || !strings.Contains(err.Error(), in) || !strings.Contains(err.Error(), "column "+name) {
			t.Errorf("column:%s: err = %v, want one naming %s and the column", name, err, in)
		}
	}
	_, err := ScoreFile(in, out, func(g *ScoreGroup) ([]float32, []bool, error) {
		_, _, err := g.Labels()
		return nil, nil, err
	}, nil)
	if err == nil || !strings.Contains(err.Error(), in) || !strings.Contains(err.Error(), "column label") {
		t.Errorf("labels of an unlabelled file: err = %v", err)
	}
}

// TestScoreGroupImagesAndLabels: Images centers each image on the canvas like the loader;
// Labels reports nulls; a failing scorer leaves nothing behind, and out may be in.
func TestScoreGroupImagesAndLabels(t *testing.T) {
	in := scoreFixture(t)
	out := filepath.Join(t.TempDir(), "out.parquet")
	first := true
	_, err := ScoreFile(in, out, func(g *ScoreGroup) ([]float32, []bool, error) {
		x, err := g.Images(8, 3)
		if err != nil {
			return nil, nil, err
		}
		labels, valid, err := g.Labels()
		if err != nil {
			return nil, nil, err
		}
		for i := range g.Rows {
			row := int(g.FirstRow) + i
			if valid[i] != (row != 5) || (valid[i] && labels[i] != int32(row%3)) {
				t.Errorf("row %d: label %d, valid %v", row, labels[i], valid[i])
			}
			px := scoreFixturePixels(row)
			for y := range 8 {
				for xx := range 8 {
					want := float32(-1)
					if y >= 1 && y < 7 && xx >= 1 && xx < 7 {
						want = float32(px[(y-1)*scoreSide+xx-1])/127.5 - 1
					}
					if got := x[((i*8+y)*8+xx)*3+2]; got != want {
						t.Fatalf("row %d: pixel (%d, %d) = %v, want %v", row, y, xx, got, want)
					}
				}
			}
		}
		if !first {
			return nil, nil, errors.New("scorer failed")
		}
		first = false
		return make([]float32, g.Rows), make([]bool, g.Rows), nil
	}, nil)
	if err == nil || err.Error() != "scorer failed" {
		t.Fatalf("err = %v, want the scorer's", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("a failed scoring left %d files", len(entries))
	}
	if _, err := ScoreFile(in, in, ColumnScorer(ColLabel), nil); err != nil {
		t.Fatal(err)
	}
	got := readParquet(t, in).scoreBits(t)
	if len(got) != 21 || got[5] != -1 || got[4] != int64(math.Float32bits(1)) {
		t.Errorf("in-place scores %v", got)
	}
}
