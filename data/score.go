package data

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Scores for data curation (Emu quality tuning, arXiv 2309.15807: fine-tune on a small,
// curated, high-quality subset). ScoreFile writes them to the score column, where the
// loader's data.min_score and data.top_k filters pick the subset.

// GradientEnergy is the mean squared finite-difference gradient of a luma image x: [h, w]
// (values in [-1, 1], row-major):
//
//	G = mean_{y, x<w-1} (x[y,x+1] − x[y,x])² + mean_{y<h-1, x} (x[y+1,x] − x[y,x])²,
//
// each mean over the horizontal (resp. vertical) neighbour pairs; a term without pairs
// (w = 1, resp. h = 1) is 0. A flat image has G = 0, a ±1 checkerboard G = 4 + 4 = 8.
func GradientEnergy(x []float32, h, w int) float64 {
	var gx, gy float64
	for y := range h {
		row := x[y*w : (y+1)*w]
		for i := range w - 1 {
			d := float64(row[i+1] - row[i])
			gx += d * d
		}
		if y+1 < h {
			next := x[(y+1)*w : (y+2)*w]
			for i := range w {
				d := float64(next[i] - row[i])
				gy += d * d
			}
		}
	}
	if w > 1 {
		gx /= float64(h * (w - 1))
	}
	if h > 1 {
		gy /= float64((h - 1) * w)
	}
	return gx + gy
}

// RMSContrast is the standard deviation of the values of x (population, 1/N): 0 for a flat
// image, 1 for a ±1 checkerboard with as many +1 as −1 pixels.
func RMSContrast(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	mean := sum / float64(len(x))
	var ss float64
	for _, v := range x {
		d := float64(v) - mean
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(x)))
}

// Sharpness is the "sharpness" score of a luma image x: [h, w] in [-1, 1]: its gradient
// energy plus its RMS contrast, GradientEnergy(x) + RMSContrast(x), in [0, 9] (a ±1
// checkerboard scores 8 + 1). Blurring lowers both terms.
func Sharpness(x []float32, h, w int) float64 {
	return GradientEnergy(x, h, w) + RMSContrast(x)
}

// maxScoreSide bounds the sides of an image decoded at its own size for scoring, so that a
// corrupt header cannot make the decoder allocate much.
const maxScoreSide = 8192

// decodeLuma decodes the PNG or JPEG b at its own size to luma [h, w] in [-1, 1]: Y/127.5 − 1
// with Y from image/color's Gray model, colour composited over black (as the loader does for
// one channel).
func decodeLuma(b []byte) (x []float32, h, w int, err error) {
	name, decodeConfig, decode, err := imageFormat(b)
	if err != nil {
		return nil, 0, 0, err
	}
	hdr, err := decodeConfig(b)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("decode %s: %w", name, err)
	}
	if hdr.Width > maxScoreSide || hdr.Height > maxScoreSide {
		return nil, 0, 0, fmt.Errorf("image is %dx%d (width x height), larger than %d a side", hdr.Width, hdr.Height, maxScoreSide)
	}
	img, err := decode(b)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("decode %s: %w", name, err)
	}
	r := img.Bounds()
	h, w = r.Dy(), r.Dx()
	x = make([]float32, h*w)
	for y := range h {
		for i := range w {
			var v uint8
			if g, ok := img.(*image.Gray); ok {
				v = g.GrayAt(r.Min.X+i, r.Min.Y+y).Y
			} else {
				c := color.RGBAModel.Convert(img.At(r.Min.X+i, r.Min.Y+y))
				v = color.GrayModel.Convert(c).(color.Gray).Y
			}
			x[y*w+i] = pixelScale[v]
		}
	}
	return x, h, w, nil
}

// SharpnessScorer scores each row's image (decoded at its own size, converted to luma in
// [-1, 1]) with Sharpness. A row without an image (a latent row) gets a null score; an image
// that does not decode is an error naming file, column and row.
func SharpnessScorer(g *ScoreGroup) ([]float32, []bool, error) {
	images, err := g.column(ColImage, kindBinary)
	if err != nil {
		return nil, nil, err
	}
	scores, valid := make([]float32, g.Rows), make([]bool, g.Rows)
	err = parallelRange(g.Rows, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if images.isNull(i) || len(images.bytesAt(i)) == 0 {
				continue
			}
			x, h, w, err := decodeLuma(images.bytesAt(i))
			if err != nil {
				return fmt.Errorf("%s: %w", g.where(ColImage, i), err)
			}
			scores[i], valid[i] = float32(Sharpness(x, h, w)), true
		}
		return nil
	})
	return scores, valid, err
}

// ColumnScorer returns a Scorer that copies the numeric column name (any int or float type)
// of the file being scored: float32 values exactly, others converted to float32 (integers
// exactly up to 2²⁴). Null and non-finite values give a null score. A missing or
// non-numeric column is an error naming file and column.
func ColumnScorer(name string) Scorer {
	return func(g *ScoreGroup) ([]float32, []bool, error) {
		idx := g.tbl.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil, nil, fmt.Errorf("data: %s: column %s: not in the file (columns: %s)", g.Path, name, g.src.columnNames())
		}
		typ := g.tbl.Schema().Field(idx[0]).Type
		if !isNumeric(typ) {
			return nil, nil, fmt.Errorf("data: %s: column %s: type %s, want a number (int or float)", g.Path, name, typ)
		}
		scores, valid := make([]float32, 0, g.Rows), make([]bool, 0, g.Rows)
		for _, a := range g.tbl.Column(idx[0]).Data().Chunks() {
			for i := range a.Len() {
				v, ok := numericAt(a, i)
				if ok && (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) {
					ok = false
				}
				if !ok {
					v = 0
				}
				scores, valid = append(scores, v), append(valid, ok)
			}
		}
		return scores, valid, nil
	}
}

// isNumeric reports whether ColumnScorer reads the type.
func isNumeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false
}

// numericAt returns element i of a numeric array as float32 (false for a null).
func numericAt(a arrow.Array, i int) (float32, bool) {
	if a.IsNull(i) {
		return 0, false
	}
	switch a := a.(type) {
	case *array.Float32:
		return a.Value(i), true
	case *array.Float64:
		return float32(a.Value(i)), true
	case *array.Float16:
		return a.Value(i).Float32(), true
	case *array.Int8:
		return float32(a.Value(i)), true
	case *array.Int16:
		return float32(a.Value(i)), true
	case *array.Int32:
		return float32(a.Value(i)), true
	case *array.Int64:
		return float32(a.Value(i)), true
	case *array.Uint8:
		return float32(a.Value(i)), true
	case *array.Uint16:
		return float32(a.Value(i)), true
	case *array.Uint32:
		return float32(a.Value(i)), true
	case *array.Uint64:
		return float32(a.Value(i)), true
	}
	return 0, false
}
