package data

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// inspectCaptionExamples is the number of captions Inspect prints.
const inspectCaptionExamples = 5

// inspectStats accumulates what Inspect reports over one or more files (shards).
type inspectStats struct {
	rows       int
	labels     map[int32]int
	nullLabels int
	hasLabels  bool
	scores     []float32
	captions   []string // the first few
	nCaptions  int
	sizes      map[[2]int32]int
	classNames []string
	vocab      []string
}

// Inspect prints, for the Parquet files paths (e.g. the shards of one dataset): each
// file's rows, row groups, size, compression and metadata, the schema of the first file,
// then over all files the image sizes, the label histogram with class names, score
// quantiles and caption examples. It reads neither images nor latents.
func Inspect(w io.Writer, paths ...string) error {
	if len(paths) == 0 {
		return fmt.Errorf("data: inspect: no files")
	}
	st := &inspectStats{labels: map[int32]int{}, sizes: map[[2]int32]int{}}
	var schema *arrow.Schema
	for i, path := range paths {
		s, err := inspectFile(w, path, st)
		if err != nil {
			return err
		}
		if i == 0 {
			schema = s
		} else if !s.Equal(schema) {
			fmt.Fprintf(w, "  note: schema differs from %s\n", paths[0])
		}
	}
	fmt.Fprintln(w, "schema:")
	for _, f := range schema.Fields() {
		null := "required"
		if f.Nullable {
			null = "nullable"
		}
		fmt.Fprintf(w, "  %-15s %-16s %s\n", f.Name, f.Type, null)
	}
	st.print(w)
	return nil
}

// inspectFile prints one file's header lines and adds its columns to st.
func inspectFile(w io.Writer, path string, st *inspectStats) (*arrow.Schema, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	defer pf.Close()
	if err := printFileHeader(w, path, pf, st); err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 8192}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	md := pf.MetaData()
	var cols []int
	for _, name := range []string{ColLabel, ColScore, ColCaption, ColWidth, ColHeight} {
		if i := md.Schema.ColumnIndexByName(name); i >= 0 {
			cols = append(cols, i)
		}
	}
	st.rows += int(md.NumRows)
	if len(cols) == 0 {
		return schema, nil
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, nil)
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	defer rr.Release()
	for rr.Next() {
		st.add(rr.RecordBatch())
	}
	if err := rr.Err(); err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	return schema, nil
}

// printFileHeader prints a file's rows, row groups, size, codec and metadata, keeping the
// class names and vocabulary in st.
func printFileHeader(w io.Writer, path string, pf *file.Reader, st *inspectStats) error {
	md := pf.MetaData()
	size := int64(0)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	codec := "-"
	if md.NumRowGroups() > 0 && md.NumColumns() > 0 {
		if cc, err := md.RowGroup(0).ColumnChunk(0); err == nil {
			codec = strings.ToLower(cc.Compression().String())
		}
	}
	fmt.Fprintf(w, "%s: %d rows, %d row groups, %s, %s\n", path, md.NumRows, md.NumRowGroups(), byteSize(size), codec)
	kv := md.KeyValueMetadata()
	version := "absent"
	if v := kv.FindValue(MetaSchemaVersion); v != nil {
		version = *v
	}
	fmt.Fprintf(w, "  schema version %s", version)
	for _, m := range []struct {
		key  string
		dst  *[]string
		name string
	}{{MetaClassNames, &st.classNames, "class names"}, {MetaVocab, &st.vocab, "vocabulary tokens"}} {
		if v := kv.FindValue(m.key); v != nil {
			var list []string
			if err := json.Unmarshal([]byte(*v), &list); err != nil {
				return fmt.Errorf("data: inspect %s: metadata %s: %w", path, m.key, err)
			}
			*m.dst = list
			fmt.Fprintf(w, ", %d %s", len(list), m.name)
		}
	}
	fmt.Fprintln(w)
	return nil
}

// byteSize formats n bytes as B, kB, MB or GB.
func byteSize(n int64) string {
	switch {
	case n < 1e3:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// add accumulates one record batch (valid only until the reader's next Next).
func (st *inspectStats) add(rec arrow.RecordBatch) {
	col := func(name string) arrow.Array {
		if idx := rec.Schema().FieldIndices(name); len(idx) == 1 {
			return rec.Column(idx[0])
		}
		return nil
	}
	n := int(rec.NumRows())
	if a, ok := col(ColLabel).(*array.Int32); ok {
		st.hasLabels = true
		for i := range n {
			if a.IsNull(i) {
				st.nullLabels++
			} else {
				st.labels[a.Value(i)]++
			}
		}
	}
	if a, ok := col(ColScore).(*array.Float32); ok {
		for i := range n {
			if a.IsValid(i) {
				st.scores = append(st.scores, a.Value(i))
			}
		}
	}
	if a, ok := col(ColCaption).(*array.String); ok {
		for i := range n {
			if a.IsValid(i) && a.Value(i) != "" {
				if st.nCaptions < inspectCaptionExamples {
					st.captions = append(st.captions, strings.Clone(a.Value(i)))
				}
				st.nCaptions++
			}
		}
	}
	wa, okW := col(ColWidth).(*array.Int32)
	ha, okH := col(ColHeight).(*array.Int32)
	if okW && okH {
		for i := range n {
			st.sizes[[2]int32{wa.Value(i), ha.Value(i)}]++
		}
	}
}

// print writes the accumulated summary.
func (st *inspectStats) print(w io.Writer) {
	fmt.Fprintf(w, "rows: %d\n", st.rows)
	if len(st.sizes) > 0 {
		keys := mapKeysSorted(st.sizes, func(a, b [2]int32) int { // most frequent first, then by size
			if c := st.sizes[b] - st.sizes[a]; c != 0 {
				return c
			}
			return int(a[0]-b[0])*1<<16 + int(a[1]-b[1])
		})
		fmt.Fprint(w, "image sizes:")
		for i, k := range keys {
			if i == 5 {
				fmt.Fprintf(w, " … (%d sizes)", len(keys))
				break
			}
			fmt.Fprintf(w, " %dx%d (%d)", k[0], k[1], st.sizes[k])
		}
		fmt.Fprintln(w)
	}
	if st.hasLabels {
		st.printHistogram(w)
	}
	if len(st.scores) > 0 {
		s := slices.Clone(st.scores)
		slices.Sort(s)
		q := func(p float64) float32 { return s[int(p*float64(len(s)-1)+0.5)] }
		fmt.Fprintf(w, "scores: %d  min %.4g  p10 %.4g  p25 %.4g  median %.4g  p75 %.4g  p90 %.4g  max %.4g\n",
			len(s), s[0], q(0.1), q(0.25), q(0.5), q(0.75), q(0.9), s[len(s)-1])
	}
	if st.nCaptions > 0 {
		fmt.Fprintf(w, "captions: %d non-empty; first %d:\n", st.nCaptions, len(st.captions))
		for _, c := range st.captions {
			fmt.Fprintf(w, "  %q\n", c)
		}
	}
}

// printHistogram writes one line per label: index, class name, count, share and a bar.
func (st *inspectStats) printHistogram(w io.Writer) {
	fmt.Fprintf(w, "labels: %d classes present", len(st.labels))
	if st.nullLabels > 0 {
		fmt.Fprintf(w, ", %d rows without a label", st.nullLabels)
	}
	fmt.Fprintln(w)
	keys := mapKeysSorted(st.labels, func(a, b int32) int { return int(a - b) })
	most := 0
	for _, c := range st.labels {
		most = max(most, c)
	}
	for _, k := range keys {
		name := ""
		if k >= 0 && int(k) < len(st.classNames) {
			name = st.classNames[k]
		}
		c := st.labels[k]
		fmt.Fprintf(w, "  %5d %-20s %8d %5.1f%% %s\n", k, name, c, 100*float64(c)/float64(max(st.rows, 1)),
			strings.Repeat("#", (40*c+most-1)/most))
	}
}

// mapKeysSorted returns m's keys ordered by cmp.
func mapKeysSorted[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

// gridRow is one image selected for a grid.
type gridRow struct {
	img   image.Image
	label int32
	has   bool
}

// GridFromFile draws n images of the Parquet file path as a PNG grid at outPNG (written
// atomically): the first n rows when seed is 0, else n distinct rows drawn with a PCG
// stream seeded by seed, in file order. Each image (PNG or JPEG, any size) sits centered in
// a cell of the largest selected size, above its label and class name (from the metadata)
// in a 3×5 pixel font.
func GridFromFile(path string, n, seed int, outPNG string) error {
	if n <= 0 {
		return fmt.Errorf("data: grid %s: n = %d, want > 0", path, n)
	}
	rows, names, err := readGridRows(path, n, seed)
	if err != nil {
		return err
	}
	return writePNGAtomic(outPNG, drawGrid(rows, names))
}

// readGridRows decodes the selected rows' images and labels.
func readGridRows(path string, n, seed int) ([]gridRow, []string, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, nil, fmt.Errorf("data: grid %s: %w", path, err)
	}
	defer pf.Close()
	var names []string
	if v := pf.MetaData().KeyValueMetadata().FindValue(MetaClassNames); v != nil {
		json.Unmarshal([]byte(*v), &names) // best effort: the grid still shows label numbers
	}
	imgCol := pf.MetaData().Schema.ColumnIndexByName(ColImage)
	if imgCol < 0 {
		return nil, nil, fmt.Errorf("data: grid %s: no %s column (latent-only datasets have no images)", path, ColImage)
	}
	cols := []int{imgCol}
	if l := pf.MetaData().Schema.ColumnIndexByName(ColLabel); l >= 0 {
		cols = append(cols, l)
	}
	pick, n := gridPick(int(pf.NumRows()), n, seed)
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		return nil, nil, fmt.Errorf("data: grid %s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("data: grid %s: %w", path, err)
	}
	defer rr.Release()
	var out []gridRow
	base := 0
	for len(out) < n && rr.Next() {
		rec := rr.RecordBatch()
		images, ok := rec.Column(0).(*array.Binary)
		if !ok {
			return nil, nil, fmt.Errorf("data: grid %s: column %s: type %s, want binary", path, ColImage, rec.Column(0).DataType())
		}
		labels, _ := rec.Column(min(1, int(rec.NumCols())-1)).(*array.Int32)
		for i := range int(rec.NumRows()) {
			if !pick[base+i] {
				continue
			}
			if images.IsNull(i) {
				return nil, nil, fmt.Errorf("data: grid %s: row %d: null image", path, base+i)
			}
			img, _, err := image.Decode(bytes.NewReader(images.Value(i)))
			if err != nil {
				return nil, nil, fmt.Errorf("data: grid %s: row %d: %w", path, base+i, err)
			}
			r := gridRow{img: img}
			if labels != nil && labels.IsValid(i) {
				r.label, r.has = labels.Value(i), true
			}
			out = append(out, r)
		}
		base += int(rec.NumRows())
	}
	if err := rr.Err(); err != nil {
		return nil, nil, fmt.Errorf("data: grid %s: %w", path, err)
	}
	return out, names, nil
}

// gridPick marks the rows a grid shows: the first n of total (seed 0) or n distinct rows
// drawn with PCG(seed); n is clamped to total.
func gridPick(total, n, seed int) ([]bool, int) {
	n = min(n, total)
	pick := make([]bool, total)
	if seed == 0 {
		for i := range n {
			pick[i] = true
		}
		return pick, n
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6772696473))
	for _, i := range rng.Perm(total)[:n] {
		pick[i] = true
	}
	return pick, n
}

// Grid layout, in pixels.
const (
	gridPad      = 2
	glyphW       = 3
	glyphH       = 5
	gridTextRows = glyphH + 2
)

// drawGrid lays rows out on a near-square grid over a dark background.
func drawGrid(rows []gridRow, names []string) *image.RGBA {
	cw, ch := 1, 1
	labels := false
	for _, r := range rows {
		b := r.img.Bounds()
		cw, ch = max(cw, b.Dx()), max(ch, b.Dy())
		labels = labels || r.has
	}
	text := 0
	if labels {
		text = gridTextRows
	}
	cols := 1
	for cols*cols < len(rows) {
		cols++
	}
	nrows := max(1, (len(rows)+cols-1)/cols)
	cellW, cellH := cw+gridPad, ch+text+gridPad
	out := image.NewRGBA(image.Rect(0, 0, cols*cellW+gridPad, nrows*cellH+gridPad))
	draw.Draw(out, out.Rect, image.NewUniform(color.RGBA{32, 32, 32, 255}), image.Point{}, draw.Src)
	for i, r := range rows {
		x0, y0 := gridPad+(i%cols)*cellW, gridPad+(i/cols)*cellH
		b := r.img.Bounds()
		at := image.Pt(x0+(cw-b.Dx())/2, y0+(ch-b.Dy())/2)
		draw.Draw(out, image.Rectangle{at, at.Add(b.Size())}, r.img, b.Min, draw.Over)
		if r.has {
			label := fmt.Sprint(r.label)
			if int(r.label) < len(names) && r.label >= 0 {
				label += " " + names[r.label]
			}
			drawText(out, x0, y0+ch+1, cw, label)
		}
	}
	return out
}

// glyphs is a 3×5 pixel font (rows top to bottom, 3 bits each, most significant = left).
var glyphs = map[rune][glyphH]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7}, '4': {5, 5, 7, 1, 1},
	'5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1}, '8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {3, 4, 4, 4, 3}, 'D': {6, 5, 5, 5, 6}, 'E': {7, 4, 6, 4, 7},
	'F': {7, 4, 6, 4, 4}, 'G': {3, 4, 5, 5, 3}, 'H': {5, 5, 7, 5, 5}, 'I': {7, 2, 2, 2, 7}, 'J': {1, 1, 1, 5, 2},
	'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7}, 'M': {5, 7, 7, 5, 5}, 'N': {6, 5, 5, 5, 5}, 'O': {2, 5, 5, 5, 2},
	'P': {6, 5, 6, 4, 4}, 'Q': {2, 5, 5, 6, 3}, 'R': {6, 5, 6, 5, 5}, 'S': {3, 4, 2, 1, 6}, 'T': {7, 2, 2, 2, 2},
	'U': {5, 5, 5, 5, 7}, 'V': {5, 5, 5, 5, 2}, 'W': {5, 5, 7, 7, 5}, 'X': {5, 5, 2, 5, 5}, 'Y': {5, 5, 2, 2, 2},
	'Z': {7, 1, 2, 4, 7}, '-': {0, 0, 7, 0, 0}, '/': {1, 1, 2, 4, 4}, '&': {2, 5, 2, 5, 3}, '.': {0, 0, 0, 0, 2},
	',': {0, 0, 0, 2, 4}, '?': {7, 1, 2, 0, 2}, ' ': {},
}

// drawText draws s in upper case at (x, y) in white, clipped to width pixels.
func drawText(dst *image.RGBA, x, y, width int, s string) {
	for _, r := range strings.ToUpper(s) {
		if x+glyphW > dst.Rect.Max.X || width < glyphW {
			return
		}
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for gy, bits := range g {
			for gx := range glyphW {
				if bits&(4>>gx) != 0 {
					dst.SetRGBA(x+gx, y+gy, color.RGBA{255, 255, 255, 255})
				}
			}
		}
		x += glyphW + 1
		width -= glyphW + 1
	}
}

// writePNGAtomic encodes img to path via a temporary file in the same directory.
func writePNGAtomic(path string, img image.Image) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data: write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("data: write %s: %w", path, err)
	}
	err = png.Encode(tmp, img)
	if err == nil {
		err = tmp.Chmod(0o644) // CreateTemp makes 0600 files
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("data: write %s: %w", path, err)
	}
	return nil
}
