package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// emojiFixture returns the files of a synthetic emoji-datasource-twitter package: three
// importable images (in sort_order: waving hand, its light skin tone, grinning face) and
// entries that must be skipped (no Twitter image, PNG missing).
func emojiFixture(t *testing.T) map[string][]byte {
	t.Helper()
	entries := []map[string]any{
		{"name": "GRINNING FACE", "unified": "1F600", "image": "1f600.png", "category": "Smileys & Emotion", "sort_order": 5, "has_img_twitter": true},
		{"name": "WAVING HAND SIGN", "unified": "1F44B", "image": "1f44b.png", "category": "People & Body", "sort_order": 1, "has_img_twitter": true,
			"skin_variations": map[string]any{
				"1F3FF": map[string]any{"unified": "1F44B-1F3FF", "image": "1f44b-1f3ff.png", "has_img_twitter": true}, // PNG missing
				"1F3FB": map[string]any{"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png", "has_img_twitter": true},
			}},
		{"name": "NO TWITTER", "unified": "1F601", "image": "1f601.png", "category": "Objects", "sort_order": 2, "has_img_twitter": false},
		{"name": "LOST FILE", "unified": "1F602", "image": "1f602.png", "category": "Flags", "sort_order": 3, "has_img_twitter": true},
	}
	meta, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	// 2×2 RGBA (non-premultiplied): transparent, opaque blue, half-transparent red, opaque white.
	rgba := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	rgba.SetNRGBA(1, 0, color.NRGBA{0, 0, 255, 255})
	rgba.SetNRGBA(0, 1, color.NRGBA{255, 0, 0, 128})
	rgba.SetNRGBA(1, 1, color.NRGBA{255, 255, 255, 255})
	pngBytes := encodePNG(t, rgba)
	return map[string][]byte{
		"package/emoji.json":                         meta,
		"package/package.json":                       []byte(`{"version": "16.0.0"}`),
		"package/img/twitter/64/1f600.png":           pngBytes,
		"package/img/twitter/64/1f44b.png":           pngBytes,
		"package/img/twitter/64/1f44b-1f3fb.png":     pngBytes,
		"package/img/twitter/64/1f601.png":           pngBytes, // has_img_twitter false
		"package/img/twitter/sheets/32.png":          pngBytes,
		"package/img/twitter/64/not-in-the-json.png": pngBytes,
	}
}

// writeTGZ writes files as an npm-style .tgz, in sorted name order.
func writeTGZ(t *testing.T, p string, files map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportEmojiFixture(t *testing.T) {
	dir := t.TempDir()
	files := emojiFixture(t)
	tgz := filepath.Join(dir, "emoji.tgz")
	writeTGZ(t, tgz, files)
	extracted := filepath.Join(dir, "x")
	for n, b := range files {
		p := filepath.Join(extracted, filepath.FromSlash(n))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
	}
	wantCaptions := []string{"waving hand sign, people & body", "waving hand sign, light skin tone, people & body", "grinning face, smileys & emotion"}
	var first []byte
	for _, src := range []string{tgz, extracted, filepath.Join(extracted, "package")} {
		out := filepath.Join(t.TempDir(), "emoji.parquet")
		_, n, err := ImportEmoji(src, out, WriterOptions{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if n != 3 {
			t.Fatalf("%s: %d rows, want 3", src, n)
		}
		r := wtRead(t, out)
		if got := r.strings(t, ColCaption); !slices.Equal(got, wantCaptions) {
			t.Errorf("%s: captions %q", src, got)
		}
		if got := r.strings(t, ColID); !slices.Equal(got, []string{"emoji-1f44b", "emoji-1f44b-1f3fb", "emoji-1f600"}) {
			t.Errorf("%s: ids %q", src, got)
		}
		if got := r.int32s(t, ColLabel); !slices.Equal(got, []int32{0, 0, 1}) {
			t.Errorf("%s: labels %v", src, got)
		}
		if r.md[MetaClassNames] != `["People & Body","Smileys & Emotion"]` || r.md[MetaSchemaVersion] != "2" {
			t.Errorf("%s: metadata %v", src, r.md)
		}
		var vocab []string
		json.Unmarshal([]byte(r.md[MetaVocab]), &vocab)
		if len(vocab) < 3 || vocab[2] != "body" || !slices.Contains(vocab, "grinning") {
			t.Errorf("%s: vocab %q", src, vocab) // body, hand, people, sign, waving appear twice; body sorts first
		}
		img := r.cols[ColImage].(*array.Binary)
		if first == nil {
			first = img.Value(0)
		} else if !bytes.Equal(first, img.Value(0)) {
			t.Errorf("%s: image bytes differ from the .tgz import", src)
		}
		checkWhiteComposite(t, img.Value(2))
	}
}

// checkWhiteComposite decodes the fixture image and checks it was drawn over white.
func checkWhiteComposite(t *testing.T, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := img.(interface{ Opaque() bool }); !ok || !o.Opaque() {
		t.Errorf("image type %T is not opaque", img)
	}
	want := map[image.Point]color.RGBA{
		{0, 0}: {255, 255, 255, 255}, // transparent → white
		{1, 0}: {0, 0, 255, 255},
		{0, 1}: {255, 127, 127, 255}, // half red over white: 255·(1 − 128/255) = 127
		{1, 1}: {255, 255, 255, 255},
	}
	for p, c := range want {
		got := color.RGBAModel.Convert(img.At(p.X, p.Y)).(color.RGBA)
		if d := max(emojiAbsDiff(got.R, c.R), emojiAbsDiff(got.G, c.G), emojiAbsDiff(got.B, c.B)); d > 1 || got.A != 255 {
			t.Errorf("pixel %v = %v, want %v", p, got, c)
		}
	}
}

func emojiAbsDiff(a, b uint8) uint8 { return max(a, b) - min(a, b) }

func TestImportEmojiErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "e.parquet")
	missing := filepath.Join(t.TempDir(), "nothing.tgz")
	if _, _, err := ImportEmoji(missing, out, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "make emoji") || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing source: err = %v", err)
	}
	notGzip := filepath.Join(t.TempDir(), "bad.tgz")
	os.WriteFile(notGzip, []byte("hello"), 0o644)
	if _, _, err := ImportEmoji(notGzip, out, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("not a gzip: err = %v", err)
	}
	noJSON := filepath.Join(t.TempDir(), "nojson.tgz")
	writeTGZ(t, noJSON, map[string][]byte{"package/README.md": []byte("hi")})
	if _, _, err := ImportEmoji(noJSON, out, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "emoji.json") {
		t.Errorf("no emoji.json: err = %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written on error")
	}
}

// realEmojiTGZ is where the test looks for the real npm package.
const realEmojiTGZ = "/tmp/emoji/emoji-datasource-twitter-16.0.0.tgz"

// TestImportEmojiReal imports the real package when present and checks the row count
// against an independent count: has_img_twitter entries and variations whose PNG exists.
func TestImportEmojiReal(t *testing.T) {
	src := realEmojiTGZ
	if _, err := os.Stat(src); err != nil {
		if src = DefaultEmojiSource; !emojiFileExists("../" + src) {
			t.Skipf("no emoji package (make emoji): %v", err)
		}
		src = "../" + src
	}
	if testing.Short() {
		t.Skip("real emoji import skipped in -short mode")
	}
	want, categories := countRealEmoji(t, src)
	out := filepath.Join(t.TempDir(), "emoji.parquet")
	_, n, err := ImportEmoji(src, out, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("imported %d rows, the package has %d Twitter images listed in emoji.json", n, want)
	}
	t.Logf("emoji: %d rows, %d categories", n, categories)
	r := wtRead(t, out)
	var names []string
	json.Unmarshal([]byte(r.md[MetaClassNames]), &names)
	if len(names) != categories || names[0] != "Smileys & Emotion" {
		t.Errorf("class names %q, want %d categories starting with Smileys & Emotion", names, categories)
	}
	if w, h := r.int32s(t, ColWidth), r.int32s(t, ColHeight); slices.Max(w) != 64 || slices.Min(w) != 64 || slices.Max(h) != 64 {
		t.Error("images are not all 64×64")
	}
	if c := r.strings(t, ColCaption)[0]; c != "grinning face, smileys & emotion" {
		t.Errorf("first caption %q", c)
	}
	dir := t.TempDir()
	s, err := ImportEmojiSplit(src, filepath.Join(dir, "train.parquet"), filepath.Join(dir, "heldout.parquet"), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("emoji split: %d training rows, %d held out", s.TrainRows, s.HeldOutRows)
	if s.TrainRows+s.HeldOutRows != n || s.HeldOutRows < n/25 || s.HeldOutRows > n*4/25 {
		t.Errorf("split %d + %d rows of %d, want about %d%% held out", s.TrainRows, s.HeldOutRows, n, EmojiHeldOutPercent)
	}
}

func emojiFileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// countRealEmoji counts, straight from the archive, the images the importer should keep.
func countRealEmoji(t *testing.T, src string) (images, categories int) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	pngs := map[string]bool{}
	var entries []struct {
		Image          string `json:"image"`
		Category       string `json:"category"`
		HasImgTwitter  bool   `json:"has_img_twitter"`
		SkinVariations map[string]struct {
			Image         string `json:"image"`
			HasImgTwitter bool   `json:"has_img_twitter"`
		} `json:"skin_variations"`
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch dir, base := path.Split(h.Name); {
		case h.Name == "package/emoji.json":
			if err := json.NewDecoder(tr).Decode(&entries); err != nil {
				t.Fatal(err)
			}
		case dir == "package/img/twitter/64/":
			pngs[base] = true
		}
	}
	cats := map[string]bool{}
	for _, e := range entries {
		if e.HasImgTwitter && pngs[e.Image] {
			images++
			cats[e.Category] = true
		}
		for _, v := range e.SkinVariations {
			if v.HasImgTwitter && pngs[v.Image] {
				images++
			}
		}
	}
	return images, len(cats)
}

// TestEmojiHeldOutGolden pins the held-out choice (FNV-1a 64 of the short name, mod 100,
// below 10) for a few real short names, and checks the share over many names.
func TestEmojiHeldOutGolden(t *testing.T) {
	for name, want := range map[string]bool{
		"grinning": false, "smile": true, "sweat_smile": true, "thumbsup": true, "joy": false,
		"wave": false, "heart": false, "rocket": false, "": false,
	} {
		if got := EmojiHeldOut(name); got != want {
			t.Errorf("EmojiHeldOut(%q) = %v, want %v", name, got, want)
		}
	}
	held := 0
	for i := range 10000 {
		if EmojiHeldOut(fmt.Sprintf("emoji_%d", i)) {
			held++
		}
	}
	if held < 900 || held > 1100 {
		t.Errorf("%d of 10,000 names held out, want about %d%%", held, EmojiHeldOutPercent)
	}
}

// emojiShortName returns the first "prefix-N" whose held-out choice is heldOut.
func emojiShortName(prefix string, heldOut bool) string {
	for i := 0; ; i++ {
		if s := fmt.Sprintf("%s-%d", prefix, i); EmojiHeldOut(s) == heldOut {
			return s
		}
	}
}

// TestImportEmojiSplit: the waving hand (short name chosen held out) goes with its skin
// variation to the held-out file, the grinning face to the training file; both files carry
// all categories and the vocabulary of all captions; the split is disjoint, covers what
// ImportEmoji writes and is the same on a second import.
func TestImportEmojiSplit(t *testing.T) {
	files := emojiFixture(t)
	var entries []map[string]any
	if err := json.Unmarshal(files["package/emoji.json"], &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		e["short_name"] = emojiShortName("kept", false)
		if e["name"] == "WAVING HAND SIGN" {
			e["short_name"] = emojiShortName("held", true)
		}
	}
	meta, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	files["package/emoji.json"] = meta
	src := filepath.Join(t.TempDir(), "emoji.tgz")
	writeTGZ(t, src, files)

	all := filepath.Join(t.TempDir(), "all.parquet")
	if _, _, err := ImportEmoji(src, all, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	ra := wtRead(t, all)
	var firstIDs []string
	for range 2 {
		dir := t.TempDir()
		train, held := filepath.Join(dir, "train.parquet"), filepath.Join(dir, "heldout.parquet")
		s, err := ImportEmojiSplit(src, train, held, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.TrainRows != 1 || s.HeldOutRows != 2 || !slices.Equal(s.TrainPaths, []string{train}) || !slices.Equal(s.HeldOutPaths, []string{held}) {
			t.Fatalf("ImportEmojiSplit = %+v", s)
		}
		rt, rh := wtRead(t, train), wtRead(t, held)
		if got := rh.strings(t, ColCaption); !slices.Equal(got, []string{"waving hand sign, people & body", "waving hand sign, light skin tone, people & body"}) {
			t.Errorf("held-out captions %q", got)
		}
		if got := rt.strings(t, ColCaption); !slices.Equal(got, []string{"grinning face, smileys & emotion"}) {
			t.Errorf("training captions %q", got)
		}
		if got, want := rt.int32s(t, ColLabel), []int32{1}; !slices.Equal(got, want) {
			t.Errorf("training labels %v, want %v (categories over all rows)", got, want)
		}
		for _, k := range []string{MetaClassNames, MetaVocab} {
			if rt.md[k] != ra.md[k] || rh.md[k] != ra.md[k] {
				t.Errorf("%s differs between the split files and the full import: %s | %s | %s", k, rt.md[k], rh.md[k], ra.md[k])
			}
		}
		var vocab []string
		json.Unmarshal([]byte(rt.md[MetaVocab]), &vocab)
		checkVocabCovers(t, vocab, rh.strings(t, ColCaption)) // held-out words have ids
		trainIDs, heldIDs := rt.strings(t, ColID), rh.strings(t, ColID)
		for _, id := range heldIDs {
			if slices.Contains(trainIDs, id) {
				t.Errorf("id %s in both splits", id)
			}
		}
		ids := append(slices.Clone(trainIDs), heldIDs...)
		slices.Sort(ids)
		if want := slices.Sorted(slices.Values(ra.strings(t, ColID))); !slices.Equal(ids, want) {
			t.Errorf("split ids %q, want the full import's %q", ids, want)
		}
		if firstIDs == nil {
			firstIDs = heldIDs
		} else if !slices.Equal(firstIDs, heldIDs) {
			t.Errorf("held-out ids %q, then %q", firstIDs, heldIDs)
		}
	}
	same := filepath.Join(t.TempDir(), "x.parquet")
	if _, err := ImportEmojiSplit(src, same, same, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "both go to") {
		t.Errorf("same path for both splits: err = %v", err)
	}
}
