package main

import (
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
