package data

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// inspectFixture writes 10 rows (labels 0,0,0,1,1,2,… with one unlabeled row, scores 0…9,
// captions) in two shards and returns their paths.
func inspectFixture(t *testing.T) []string {
	t.Helper()
	opts := WriterOptions{ClassNames: []string{"zero", "one", "two"}, Vocab: BuildVocab([]string{"a b"}, 0), ShardRows: 6}
	w, err := NewWriter(filepath.Join(t.TempDir(), "i.parquet"), []string{ColImage, ColLabel, ColCaption, ColScore, ColWidth, ColHeight}, opts)
	if err != nil {
		t.Fatal(err)
	}
	labels := []int32{0, 0, 0, 1, 1, 2, 2, 2, 2, -1}
	for i, l := range labels {
		g := image.NewGray(image.Rect(0, 0, 3+i%2, 3))
		for k := range g.Pix {
			g.Pix[k] = uint8(25 * i)
		}
		r := Row{Image: encodePNG(t, g), Label: l, HasLabel: l >= 0, Score: float32(i), HasScore: true, Width: int32(3 + i%2), Height: 3}
		if i%3 == 0 {
			r.Caption = "caption " + string(rune('a'+i))
		}
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	paths, _, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestInspect(t *testing.T) {
	paths := inspectFixture(t)
	var out bytes.Buffer
	if err := Inspect(&out, paths...); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		paths[0] + ": 6 rows, 1 row groups", paths[1] + ": 4 rows",
		"schema version 2, 3 class names, 4 vocabulary tokens",
		"label ", "int32", "nullable", "width           int32            required",
		"rows: 10",
		"image sizes: 3x3 (5) 4x3 (5)",
		"labels: 3 classes present, 1 rows without a label",
		"    0 zero                        3  30.0% ##############################",
		"    1 one                         2  20.0% ####################",
		"    2 two                         4  40.0% ########################################",
		"scores: 10  min 0  p10 1  p25 2  median 5  p75 7  p90 8  max 9",
		"score histogram (10 bins):",
		"  [        0,       0.9)        1  10.0% ########################################",
		"  [      8.1,         9]        1  10.0% ########################################",
		"captions: 4 non-empty; first 4:", `"caption a"`, `"caption j"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Inspect output lacks %q:\n%s", want, s)
		}
	}
	if err := Inspect(&out, filepath.Join(t.TempDir(), "none.parquet")); err == nil || !strings.Contains(err.Error(), "none.parquet") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestGridFromFile(t *testing.T) {
	paths := inspectFixture(t)
	for _, tc := range []struct {
		n, seed int
		w, h    int
	}{
		// Cells are 4×3 images + 7 text rows, 2 px padding: (4+2)·cols+2 by (3+7+2)·rows+2.
		{4, 0, 2*6 + 2, 2*12 + 2},
		{5, 7, 3*6 + 2, 2*12 + 2},
		{100, 0, 3*6 + 2, 2*12 + 2}, // clamped to the 6 rows of the first shard
	} {
		out := filepath.Join(t.TempDir(), "g", "grid.png")
		if err := GridFromFile(paths[0], tc.n, tc.seed, out); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
			t.Errorf("%+v: grid %v, want %d×%d", tc, b, tc.w, tc.h)
		}
		if tc.seed == 0 {
			// The first cell holds row 0 (pixel value 0) at (2, 2); row 1 (value 25) is the next cell.
			if c := color.GrayModel.Convert(img.At(2, 2)).(color.Gray); c.Y != 0 {
				t.Errorf("%+v: first image pixel %d", tc, c.Y)
			}
			if c := color.GrayModel.Convert(img.At(2+6, 2)).(color.Gray); c.Y != 25 {
				t.Errorf("%+v: second image pixel %d", tc, c.Y)
			}
			// Label "0 ZERO" in white below the first image.
			white := 0
			for y := 2 + 3; y < 2+3+7; y++ {
				for x := 2; x < 6; x++ {
					if c := color.GrayModel.Convert(img.At(x, y)).(color.Gray); c.Y == 255 {
						white++
					}
				}
			}
			if white == 0 {
				t.Errorf("%+v: no label text under the first image", tc)
			}
		}
	}
	if err := GridFromFile(paths[0], 0, 0, filepath.Join(t.TempDir(), "x.png")); err == nil {
		t.Error("n = 0: no error")
	}
}

// TestScoreHistogram: equal-width bins over [min, max], the last closed; one bin when all
// scores are equal; non-finite scores left out.
func TestScoreHistogram(t *testing.T) {
	var out bytes.Buffer
	printScoreHistogram(&out, []float32{0, 0, 0, 1, 10, float32(math.NaN())}, 8)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 11 || !strings.Contains(lines[1], "[        0,         1)        3  37.5% ###") ||
		!strings.Contains(lines[2], "[        1,         2)        1  12.5% #######") ||
		!strings.Contains(lines[10], "[        9,        10]        1  12.5%") {
		t.Errorf("histogram:\n%s", out.String())
	}
	out.Reset()
	printScoreHistogram(&out, []float32{2, 2}, 2)
	if want := "score histogram (1 bins):\n  [        2,         2]        2 100.0% ########################################\n"; out.String() != want {
		t.Errorf("equal scores:\n%q\nwant\n%q", out.String(), want)
	}
}
