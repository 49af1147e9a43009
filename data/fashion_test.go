package data

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestImportFashionMNISTFixture(t *testing.T) {
	f := writeMNISTFixture(t, "train", 12, true)
	out := filepath.Join(t.TempDir(), "fashion.parquet")
	paths, n, err := ImportFashionMNIST(f.dir, "train", out, WriterOptions{RowGroupRows: 5})
	if err != nil || n != 12 || !slices.Equal(paths, []string{out}) {
		t.Fatalf("ImportFashionMNIST = %v, %d, %v", paths, n, err)
	}
	r := wtRead(t, out)
	var names, vocab []string
	if json.Unmarshal([]byte(r.md[MetaClassNames]), &names) != nil || !slices.Equal(names, FashionMNISTClassNames) {
		t.Errorf("class names %s", r.md[MetaClassNames])
	}
	// The vocabulary covers the class names and all templates: "<pad>", "<unk>", then the
	// most frequent template token, "a".
	if json.Unmarshal([]byte(r.md[MetaVocab]), &vocab) != nil || vocab[0] != PadToken || vocab[2] != "a" {
		t.Errorf("vocab %v", vocab)
	}
	checkVocabCovers(t, vocab, append(slices.Clone(FashionMNISTClassNames), TemplateCaptions(10, FashionMNISTCaptions)...))
	if got := r.pf.MetaData().NumRowGroups(); got != 3 {
		t.Errorf("%d row groups, want 3 (5, 5, 2 rows)", got)
	}
	captions, ids, labels := r.strings(t, ColCaption), r.strings(t, ColID), r.int32s(t, ColLabel)
	images := r.cols[ColImage].(*array.Binary)
	for i := range n {
		l := f.labels[i]
		if labels[i] != int32(l) || captions[i] != FashionMNISTCaptions(int(l))[i%5] || ids[i] != "fashion-mnist-train-"+strconv.Itoa(i) {
			t.Errorf("row %d: label %d caption %q id %s", i, labels[i], captions[i], ids[i])
		}
		img, err := png.Decode(bytes.NewReader(images.Value(i)))
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := img.(*image.Gray); !ok || !bytes.Equal(g.Pix, f.images[i]) {
			t.Errorf("row %d: image is not the idx pixels as a gray PNG", i)
		}
	}
}

func TestImportFashionMNISTMissing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "f.parquet")
	_, _, err := ImportFashionMNIST(t.TempDir(), "test", out, WriterOptions{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y dataset-fashion-mnist") || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte") {
		t.Errorf("missing files: err = %v", err)
	}
	if _, _, err := ImportFashionMNIST(t.TempDir(), "valid", out, WriterOptions{}); err == nil || !strings.Contains(err.Error(), `Fashion-MNIST split "valid"`) {
		t.Errorf("bad split: err = %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written on error")
	}
}

// TestImportFashionMNISTReal imports the Debian package's files when installed.
func TestImportFashionMNISTReal(t *testing.T) {
	if _, err := os.Stat(filepath.Join(FashionMNISTDir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist): %v", err)
	}
	splits := []struct {
		name  string
		rows  int
		first []int32
	}{{"test", 10000, []int32{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}}, {"train", 60000, []int32{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}}}
	if testing.Short() {
		splits = splits[:1]
	}
	for _, s := range splits {
		out := filepath.Join(t.TempDir(), s.name+".parquet")
		_, n, err := ImportFashionMNIST("", s.name, out, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := wtRead(t, out)
		if n != s.rows || r.rec.NumRows() != int64(s.rows) {
			t.Fatalf("%s: %d rows (file %d), want %d", s.name, n, r.rec.NumRows(), s.rows)
		}
		if got := r.int32s(t, ColLabel)[:10]; !slices.Equal(got, s.first) {
			t.Errorf("%s: first labels %v, want %v", s.name, got, s.first)
		}
		if c := r.strings(t, ColCaption)[0]; c != "a photo of an ankle boot" { // label 9, template 0
			t.Errorf("%s: first caption %q", s.name, c)
		}
	}
}
