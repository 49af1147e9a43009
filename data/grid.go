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
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// gridRow is one image selected for a grid.
type gridRow struct {
	img   image.Image
	row   int // row index in the file
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
	rows, names, err := readGridRows(path, func(total int) ([]bool, int) { return gridPick(total, n, seed) })
	if err != nil {
		return err
	}
	return writePNGAtomic(outPNG, drawGrid(rows, names))
}

// readGridRows decodes, in file order, the images and labels of the rows that pick marks
// (given the file's row count, it returns the marks and their number).
func readGridRows(path string, pick func(total int) ([]bool, int)) ([]gridRow, []string, error) {
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
	picked, n := pick(int(pf.NumRows()))
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
			if !picked[base+i] {
				continue
			}
			if images.IsNull(i) {
				return nil, nil, fmt.Errorf("data: grid %s: row %d: null image", path, base+i)
			}
			img, _, err := image.Decode(bytes.NewReader(images.Value(i)))
			if err != nil {
				return nil, nil, fmt.Errorf("data: grid %s: row %d: %w", path, base+i, err)
			}
			r := gridRow{img: img, row: base + i}
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
	gridBackground(out)
	for i, r := range rows {
		label := ""
		if r.has {
			label = fmt.Sprint(r.label)
			if int(r.label) < len(names) && r.label >= 0 {
				label += " " + names[r.label]
			}
		}
		drawCell(out, gridPad+(i%cols)*cellW, gridPad+(i/cols)*cellH, cw, ch, r.img, label)
	}
	return out
}

// drawCell draws img centered in the cw×ch cell at (x0, y0) and text below it.
func drawCell(out *image.RGBA, x0, y0, cw, ch int, img image.Image, text string) {
	b := img.Bounds()
	at := image.Pt(x0+(cw-b.Dx())/2, y0+(ch-b.Dy())/2)
	draw.Draw(out, image.Rectangle{at, at.Add(b.Size())}, img, b.Min, draw.Over)
	if text != "" {
		drawText(out, x0, y0+ch+1, cw, text)
	}
}

// gridBackground fills out with the grids' dark background.
func gridBackground(out *image.RGBA) {
	draw.Draw(out, out.Rect, image.NewUniform(color.RGBA{32, 32, 32, 255}), image.Point{}, draw.Src)
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
