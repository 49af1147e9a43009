package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// folderFiles writes files (name → content) under dir.
func folderFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// solidPNG returns a w×h PNG of one colour.
func solidPNG(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	return encodePNG(t, img)
}

func solidJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, w, h))
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestImportFolderSidecars(t *testing.T) {
	dir := t.TempDir()
	a, b := solidPNG(t, 3, 2, color.RGBA{255, 0, 0, 255}), solidJPEG(t, 4, 5)
	folderFiles(t, dir, map[string][]byte{
		"a.png": a, "a.txt": []byte("  A red square \n"), "b.JPG": b, ".hidden.png": a, "notes.md": []byte("x"),
		"sub/c.png": a, "sub/c.txt": []byte("in sub"), ".git/d.png": a,
	})
	for _, tc := range []struct {
		recursive bool
		ids       []string
		captions  []string
	}{
		{false, []string{"a.png", "b.JPG"}, []string{"A red square", "<null>"}},
		{true, []string{"a.png", "b.JPG", "sub/c.png"}, []string{"A red square", "<null>", "in sub"}},
	} {
		out := filepath.Join(t.TempDir(), "f.parquet")
		_, n, err := ImportFolder(dir, out, FolderOptions{Recursive: tc.recursive}, WriterOptions{})
		if err != nil || n != len(tc.ids) {
			t.Fatalf("recursive=%v: %d rows, %v", tc.recursive, n, err)
		}
		r := wtRead(t, out)
		if got := r.strings(t, ColID); !slices.Equal(got, tc.ids) {
			t.Errorf("recursive=%v: ids %q, want %q", tc.recursive, got, tc.ids)
		}
		if got := r.strings(t, ColCaption); !slices.Equal(got, tc.captions) {
			t.Errorf("recursive=%v: captions %q, want %q", tc.recursive, got, tc.captions)
		}
		if _, ok := r.cols[ColLabel]; ok {
			t.Errorf("recursive=%v: label column with images at the top level", tc.recursive)
		}
		if _, ok := r.md[MetaClassNames]; ok {
			t.Errorf("recursive=%v: class names without labels", tc.recursive)
		}
		img := r.cols[ColImage].(*array.Binary)
		if !bytes.Equal(img.Value(0), a) || !bytes.Equal(img.Value(1), b) {
			t.Errorf("recursive=%v: without -size the file bytes must be kept", tc.recursive)
		}
		if w, h := r.int32s(t, ColWidth), r.int32s(t, ColHeight); w[0] != 3 || h[0] != 2 || w[1] != 4 || h[1] != 5 {
			t.Errorf("recursive=%v: sizes %v × %v", tc.recursive, w, h)
		}
	}
	if _, _, err := ImportFolder(filepath.Join(dir, "sub", "none"), filepath.Join(t.TempDir(), "x.parquet"), FolderOptions{}, WriterOptions{}); err == nil {
		t.Error("missing directory: no error")
	}
	empty := t.TempDir()
	if _, _, err := ImportFolder(empty, filepath.Join(t.TempDir(), "x.parquet"), FolderOptions{Recursive: true}, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "no images") {
		t.Errorf("empty directory: err = %v", err)
	}
}

func TestImportFolderSubdirLabels(t *testing.T) {
	dir := t.TempDir()
	p := solidPNG(t, 2, 2, color.White)
	folderFiles(t, dir, map[string][]byte{"dogs/1.png": p, "cats/2.png": p, "cats/deep/3.jpeg": solidJPEG(t, 2, 2), "zebras/readme.txt": []byte("no images")})
	out := filepath.Join(t.TempDir(), "l.parquet")
	if _, _, err := ImportFolder(dir, out, FolderOptions{Recursive: true}, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	r := wtRead(t, out)
	if got := r.strings(t, ColID); !slices.Equal(got, []string{"cats/2.png", "cats/deep/3.jpeg", "dogs/1.png"}) {
		t.Errorf("ids %q", got)
	}
	if got := r.int32s(t, ColLabel); !slices.Equal(got, []int32{0, 0, 1}) {
		t.Errorf("labels %v", got)
	}
	if r.md[MetaClassNames] != `["cats","dogs"]` {
		t.Errorf("class names %s", r.md[MetaClassNames])
	}
	if _, ok := r.cols[ColCaption]; ok || r.md[MetaVocab] != "" {
		t.Error("caption column or vocabulary without captions")
	}
}

func TestImportFolderManifest(t *testing.T) {
	dir := t.TempDir()
	p := solidPNG(t, 2, 2, color.White)
	folderFiles(t, dir, map[string][]byte{
		"imgs/x.png": p, "imgs/x.txt": []byte("x from sidecar"), "imgs/y.png": p, "imgs/unlisted.png": p, "other.png": p,
		"meta.csv":   []byte("file,caption,label,score\nimgs/y.png,y cap,1,0.25\nimgs/x.png,,0,\n"),
		"meta.jsonl": []byte(`{"file": "imgs/y.png", "caption": "y cap", "label": 1, "score": 0.25}` + "\n" + `{"file": "imgs/x.png", "label": 0}` + "\n"),
	})
	for _, m := range []string{"meta.csv", "meta.jsonl"} {
		for _, d := range []string{dir, ""} {
			out := filepath.Join(t.TempDir(), "m.parquet")
			_, n, err := ImportFolder(d, out, FolderOptions{Manifest: filepath.Join(dir, m)}, WriterOptions{})
			if err != nil || n != 2 {
				t.Fatalf("%s: %d rows, %v", m, n, err)
			}
			r := wtRead(t, out)
			if got := r.strings(t, ColID); !slices.Equal(got, []string{"imgs/y.png", "imgs/x.png"}) {
				t.Errorf("%s: ids %q (manifest order)", m, got)
			}
			if got := r.strings(t, ColCaption); !slices.Equal(got, []string{"y cap", "x from sidecar"}) {
				t.Errorf("%s: captions %q", m, got)
			}
			if got := r.int32s(t, ColLabel); !slices.Equal(got, []int32{1, 0}) {
				t.Errorf("%s: labels %v", m, got)
			}
			if s := r.cols[ColScore].(*array.Float32); s.Value(0) != 0.25 || s.IsValid(1) {
				t.Errorf("%s: scores %v", m, s)
			}
		}
	}
	for _, tc := range []struct {
		dir, manifest, want string
	}{
		{dir, "file\nimgs/x.png\nimgs/missing.png\n", "line 3: file \"imgs/missing.png\": no such image file"},
		{dir, "file\nimgs/x.png\n./imgs/x.png\n", "line 3: file \"./imgs/x.png\": already listed on line 2"},
		{dir, "file\nimgs/x.txt\n", "line 2: file \"imgs/x.txt\": not a .png"},
		{filepath.Join(dir, "imgs"), "file\nimgs/x.png\nother.png\n", "line 3: file \"other.png\": outside the folder"},
		{dir, "file,label\nimgs/x.png,two\n", "line 2: label \"two\""},
	} {
		m := filepath.Join(dir, "bad.csv")
		os.WriteFile(m, []byte(tc.manifest), 0o644)
		out := filepath.Join(t.TempDir(), "bad.parquet")
		if _, _, err := ImportFolder(tc.dir, out, FolderOptions{Manifest: m}, WriterOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), m) {
			t.Errorf("%q: err = %v, want %q", tc.manifest, err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%q: output written", tc.manifest)
		}
	}
}

func TestImportFolderResize(t *testing.T) {
	dir := t.TempDir()
	// 6×2: black, black, white, white, black, black in both rows: the center crop is white.
	stripe := image.NewRGBA(image.Rect(0, 0, 6, 2))
	for y := range 2 {
		for x := range 6 {
			v := uint8(0)
			if x == 2 || x == 3 {
				v = 255
			}
			stripe.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 100, 60))
	for i := range gray.Pix {
		gray.Pix[i] = 77
	}
	folderFiles(t, dir, map[string][]byte{"a.png": encodePNG(t, stripe), "b.png": encodePNG(t, gray), "c.jpg": solidJPEG(t, 30, 50)})
	out := filepath.Join(t.TempDir(), "r.parquet")
	if _, _, err := ImportFolder(dir, out, FolderOptions{Size: 2}, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	r := wtRead(t, out)
	img := r.cols[ColImage].(*array.Binary)
	for i := range 3 {
		got, err := png.Decode(bytes.NewReader(img.Value(i)))
		if err != nil {
			t.Fatalf("row %d: stored image is not a PNG: %v", i, err)
		}
		if b := got.Bounds(); b.Dx() != 2 || b.Dy() != 2 || r.int32s(t, ColWidth)[i] != 2 || r.int32s(t, ColHeight)[i] != 2 {
			t.Errorf("row %d: %v, want 2×2", i, b)
		}
		want := []uint8{255, 77, 0}[i]
		for y := range 2 {
			for x := range 2 {
				if c := color.GrayModel.Convert(got.At(x, y)).(color.Gray); c.Y != want {
					t.Errorf("row %d: pixel (%d, %d) = %d, want %d", i, x, y, c.Y, want)
				}
			}
		}
		if _, isGray := got.(*image.Gray); isGray == (i == 0) { // gray PNG and gray JPEG stay gray

			t.Errorf("row %d: decoded as %T", i, got)
		}
	}
}

func TestResample(t *testing.T) {
	src := []uint8{
		0, 10, 100, 100,
		20, 30, 200, 200,
		1, 1, 50, 51,
		1, 1, 50, 51,
	}
	if got := resample(src, 4, 4, 1, 2, 2); !slices.Equal(got, []uint8{15, 150, 1, 51}) { // 50.5 rounds up
		t.Errorf("4×4 → 2×2 area = %v", got)
	}
	if got := resample([]uint8{0, 255}, 2, 1, 1, 4, 1); !slices.Equal(got, []uint8{0, 64, 191, 255}) {
		t.Errorf("2 → 4 bilinear = %v", got)
	}
	if got := resample(src, 4, 4, 1, 4, 4); !slices.Equal(got, src) {
		t.Errorf("identity = %v", got)
	}
	// 3 → 2 area: output pixel 0 covers source [0, 1.5): (1·30 + 0.5·60)/1.5 = 40.
	if got := resample([]uint8{30, 1, 60, 2, 90, 3}, 3, 1, 2, 2, 1); !slices.Equal(got, []uint8{40, 1, 80, 3}) {
		t.Errorf("3 → 2 area, 2 channels = %v", got)
	}
	// Resizing keeps the shorter side: a 9×3 image center-cropped to 3×3, then 3 → 6.
	img := ResizeCrop(image.NewNRGBA(image.Rect(5, 5, 14, 8)), 6)
	if b := img.Bounds(); b != image.Rect(0, 0, 6, 6) {
		t.Errorf("ResizeCrop bounds %v", b)
	}
}
