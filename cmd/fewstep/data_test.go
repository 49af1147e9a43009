package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/data"
)

func TestDataUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"data"},
		{"data", "export"},
		{"data", "import"},
		{"data", "import", "cifar"},
		{"data", "import", "mnist", "-split", "valid", "-out", filepath.Join(dir, "x.parquet")},
		{"data", "import", "mnist"}, // no -out
		{"data", "import", "fashion-mnist", "-out", filepath.Join(dir, "x.parquet"), "-compression", "lz4"},
		{"data", "import", "emoji", "-out", filepath.Join(dir, "x.parquet"), "-row-group", "0"},
		{"data", "import", "emoji", "-out", filepath.Join(dir, "x.parquet"), "-vocab-size", "1"},
		{"data", "import", "folder", "-out", filepath.Join(dir, "x.parquet")}, // no DIR
		{"data", "import", "folder", dir, dir, "-out", filepath.Join(dir, "x.parquet")},
		{"data", "import", "folder", filepath.Join(dir, "missing"), "-out", filepath.Join(dir, "x.parquet")},
		{"data", "import", "folder", dir, "-out", filepath.Join(dir, "x.parquet"), "-size", "-2"},
		{"data", "inspect"},
		{"data", "grid", "-out", filepath.Join(dir, "g.png")},
		{"data", "grid", "a.parquet"},
		{"data", "grid", "a.parquet", "-out", "g.png", "-n", "0"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("fewstep %q: exit code %d, want 2", args, code)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors wrote %d files", len(entries))
	}
}

// TestDataFolderInspectGrid: import a folder (flags after DIR), inspect it, draw a grid.
func TestDataFolderInspectGrid(t *testing.T) {
	src := t.TempDir()
	for i, class := range []string{"cats", "dogs", "dogs"} {
		p := filepath.Join(src, class, string(rune('a'+i))+".png")
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, image.NewGray(image.Rect(0, 0, 10, 6)))
		f.Close()
		os.WriteFile(strings.TrimSuffix(p, ".png")+".txt", []byte("a "+class), 0o644)
	}
	out := filepath.Join(t.TempDir(), "folder.parquet")
	if code := run([]string{"data", "import", "folder", src, "-out", out, "-size", "4", "-shard-rows", "2", "-compression", "none"}); code != 0 {
		t.Fatalf("import folder: exit code %d", code)
	}
	shards := []string{data.ShardPath(out, 0, 2), data.ShardPath(out, 1, 2)}
	for _, p := range shards {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	if code := run(append([]string{"data", "inspect"}, shards...)); code != 0 {
		t.Errorf("inspect: exit code %d", code)
	}
	grid := filepath.Join(t.TempDir(), "grid.png")
	if code := run([]string{"data", "grid", shards[0], "-n", "2", "-seed", "5", "-out", grid}); code != 0 {
		t.Errorf("grid: exit code %d", code)
	}
	if _, err := os.Stat(grid); err != nil {
		t.Error(err)
	}
	if code := run([]string{"data", "import", "emoji", "-src", filepath.Join(src, "nothing.tgz"), "-out", filepath.Join(t.TempDir(), "e.parquet")}); code != 1 {
		t.Errorf("emoji without the package: exit code %d, want 1", code)
	}
}

// scoreFixture writes n labelled 8×8 gray images (row i: a checkerboard of contrast 20·i,
// label i%2) with data.NewWriter, or unlabelled ones, and returns the path.
func scoreFixture(t *testing.T, n int, labelled bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.parquet")
	cols := []string{data.ColImage, data.ColWidth, data.ColHeight}
	if labelled {
		cols = append(cols, data.ColLabel)
	}
	w, err := data.NewWriter(path, cols, data.WriterOptions{RowGroupRows: 5, ClassNames: []string{"even", "odd"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		g := image.NewGray(image.Rect(0, 0, 8, 8))
		for k := range g.Pix {
			g.Pix[k] = uint8(128 + 10*i*(1-2*((k/8+k%8)%2)))
		}
		var b bytes.Buffer
		png.Encode(&b, g)
		if err := w.Write(data.Row{Image: b.Bytes(), Width: 8, Height: 8, Label: int32(i % 2), HasLabel: labelled}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDataScoreUsageErrors(t *testing.T) {
	in := scoreFixture(t, 3, true)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.parquet")
	for _, args := range [][]string{
		{"data", "score", "-scorer", "sharpness", "-out", out},              // no -data
		{"data", "score", "-data", in, "-scorer", "sharpness"},              // no -out
		{"data", "score", "-data", in, "-out", out},                         // no -scorer
		{"data", "score", "-data", in, "-scorer", "aesthetic", "-out", out}, // unknown scorer
		{"data", "score", "-data", in, "-scorer", "column:", "-out", out},
		{"data", "inspect", in, "-top-k", "-1"},
		{"data", "inspect", in, "-per-class"}, // -per-class needs -top-k
		{"data", "grid", in, "-min-score", "nan", "-out", filepath.Join(dir, "g.png")},
		{"data", "grid", in, "-top-k", "2", "-seed", "3", "-out", filepath.Join(dir, "g.png")},
	} {
		if code := run(args); code != 2 {
			t.Errorf("fewstep %q: exit code %d, want 2", args, code)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors wrote %d files", len(entries))
	}
}

// TestDataScoreCurate: score by sharpness (twice: identical bytes), copy the score with
// column:score, preview the curation with inspect and grid; missing columns and labels fail
// naming the file.
func TestDataScoreCurate(t *testing.T) {
	in := scoreFixture(t, 12, true)
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet"), filepath.Join(dir, "c.parquet")
	for _, out := range []string{a, b} {
		if code := run([]string{"data", "score", "-data", in, "-scorer", "sharpness", "-out", out}); code != 0 {
			t.Fatalf("score sharpness: exit code %d", code)
		}
	}
	if code := run([]string{"data", "score", "-data", a, "-scorer", "column:score", "-out", c}); code != 0 {
		t.Fatalf("score column:score: exit code %d", code)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	bc, _ := os.ReadFile(c)
	if len(ba) == 0 || !bytes.Equal(ba, bb) || !bytes.Equal(ba, bc) {
		t.Errorf("outputs differ: %d, %d and %d bytes", len(ba), len(bb), len(bc))
	}
	if code := run([]string{"data", "inspect", a, "-top-k", "2", "-per-class", "-min-score", "0.5"}); code != 0 {
		t.Errorf("inspect -top-k: exit code %d", code)
	}
	grid := filepath.Join(dir, "grid.png")
	if code := run([]string{"data", "grid", a, "-top-k", "3", "-per-class", "-n", "4", "-out", grid}); code != 0 {
		t.Errorf("grid -top-k: exit code %d", code)
	}
	if _, err := os.Stat(grid); err != nil {
		t.Error(err)
	}
	if code := run([]string{"data", "score", "-data", in, "-scorer", "column:aesthetic", "-out", c}); code != 1 {
		t.Errorf("column:aesthetic of a file without it: exit code %d, want 1", code)
	}
	unlabelled := scoreFixture(t, 3, false)
	for _, scorer := range []string{"classifier", "classifier-margin"} {
		sc, err := newScorer("data score", scorer, "mnist-teacher", "", "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = data.ScoreFile(unlabelled, filepath.Join(dir, "x.parquet"), sc, nil)
		if err == nil || !strings.Contains(err.Error(), unlabelled) || !strings.Contains(err.Error(), "column label") {
			t.Errorf("%s of an unlabelled file: err = %v, want one naming the file and the label column", scorer, err)
		}
	}
	if code := run([]string{"data", "inspect", in, "-top-k", "2"}); code != 1 {
		t.Errorf("inspect -top-k of a file without scores: exit code %d, want 1", code)
	}
}
