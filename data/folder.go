package data

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // image.Decode of .jpg/.jpeg files
	_ "image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FolderOptions control ImportFolder.
type FolderOptions struct {
	// Manifest is a CSV or JSONL file listing the images (see ReadManifest); "" walks the
	// directory instead.
	Manifest string
	// Size > 0 resizes each image (shorter side to Size, area averaging when shrinking,
	// bilinear when enlarging) and center-crops it to Size×Size, stored as PNG; 0 keeps
	// the files' bytes (PNG or JPEG) as they are.
	Size int
	// Recursive walks subdirectories (without a manifest); needed for subdirectory labels.
	Recursive bool
}

// folderItem is one image to import.
type folderItem struct {
	path, id, caption string
	label             int32
	hasLabel          bool
	score             float32
	hasScore          bool
}

// ImportFolder imports the images (.png, .jpg, .jpeg) under dir into outPath.
//
// Without a manifest it walks dir in sorted path order (subdirectories only when
// fo.Recursive; names starting with "." are skipped); captions come from .txt sidecars
// with the image's base name (e.g. cat.png → cat.txt). When walking recursively and every
// image lies in a first-level subdirectory, the subdirectory names, sorted, are the
// classes: label = index, class names in the metadata.
//
// With fo.Manifest the manifest's entries are the images, in its order; their paths are
// relative to the manifest's directory and, when dir is not "", must lie inside dir.
// Labels and scores come from the manifest, captions from it or else from sidecars.
//
// Rows: image, width, height, id (the path relative to dir or to the manifest's
// directory, with "/"), and label, caption, score when any image has one. opts.Vocab is
// built from the captions when nil and there are captions.
func ImportFolder(dir, outPath string, fo FolderOptions, opts WriterOptions) ([]string, int, error) {
	if fo.Size < 0 {
		return nil, 0, fmt.Errorf("data: import folder: size %d: want > 0 (or 0 to keep the images)", fo.Size)
	}
	var items []folderItem
	var classNames []string
	var err error
	if fo.Manifest != "" {
		items, err = manifestItems(dir, fo.Manifest)
	} else {
		items, classNames, err = walkFolder(dir, fo.Recursive)
	}
	if err != nil {
		return nil, 0, err
	}
	if len(items) == 0 {
		return nil, 0, fmt.Errorf("data: import folder %s: no images (.png, .jpg, .jpeg)", cmp.Or(dir, fo.Manifest))
	}
	columns, captions := folderColumns(items)
	if len(captions) > 0 && opts.Vocab == nil {
		opts.Vocab = BuildVocab(captions, opts.VocabSize)
	}
	if opts.ClassNames == nil {
		opts.ClassNames = classNames
	}
	if opts.Total == 0 {
		opts.Total = len(items)
	}
	w, err := NewWriter(outPath, columns, opts)
	if err != nil {
		return nil, 0, err
	}
	err = writeRowsParallel(w, len(items), func(i int, enc *pngEncoder) (Row, error) {
		it := items[i]
		r := Row{Caption: it.caption, ID: it.id, Label: it.label, HasLabel: it.hasLabel, Score: it.score, HasScore: it.hasScore}
		var err error
		r.Image, r.Width, r.Height, err = loadFolderImage(it.path, fo.Size, enc)
		if err != nil {
			return Row{}, fmt.Errorf("data: import folder: %s: %w", it.path, err)
		}
		return r, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return w.Close()
}

// folderColumns returns the columns the items use and their non-empty captions.
func folderColumns(items []folderItem) ([]string, []string) {
	columns := []string{ColImage, ColWidth, ColHeight, ColID}
	var captions []string
	for _, it := range items {
		if it.caption != "" {
			captions = append(captions, it.caption)
		}
		if it.hasLabel && !slices.Contains(columns, ColLabel) {
			columns = append(columns, ColLabel)
		}
		if it.hasScore && !slices.Contains(columns, ColScore) {
			columns = append(columns, ColScore)
		}
	}
	if len(captions) > 0 {
		columns = append(columns, ColCaption)
	}
	return columns, captions
}

// loadFolderImage reads and decodes one image; with size > 0 it returns the resized,
// center-cropped PNG, else the file's bytes.
func loadFolderImage(path string, size int, enc *pngEncoder) ([]byte, int32, int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, 0, err
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("decode: %w", err)
	}
	if size == 0 {
		r := img.Bounds()
		return b, int32(r.Dx()), int32(r.Dy()), nil
	}
	out, err := enc.encode(ResizeCrop(img, size))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("encode png: %w", err)
	}
	return out, int32(size), int32(size), nil
}

// isFolderImage reports whether name has an image extension we import.
func isFolderImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// sidecarCaption returns the trimmed text of the .txt next to the image ("" if none).
func sidecarCaption(imagePath string) (string, error) {
	b, err := os.ReadFile(strings.TrimSuffix(imagePath, filepath.Ext(imagePath)) + ".txt")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// walkFolder lists the images under dir in sorted order with their sidecar captions and,
// when every image lies in a first-level subdirectory of a recursive walk, their labels.
func walkFolder(dir string, recursive bool) ([]folderItem, []string, error) {
	var items []folderItem
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || (d.IsDir() && !recursive) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isFolderImage(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		caption, err := sidecarCaption(p)
		if err != nil {
			return err
		}
		items = append(items, folderItem{path: p, id: filepath.ToSlash(rel), caption: caption})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("data: import folder %s: %w", dir, err)
	}
	if !recursive || len(items) == 0 {
		return items, nil, nil
	}
	var classes []string
	for _, it := range items {
		class, _, nested := strings.Cut(it.id, "/")
		if !nested {
			return items, nil, nil // an image at the top: no subdirectory labels
		}
		if !slices.Contains(classes, class) {
			classes = append(classes, class)
		}
	}
	slices.Sort(classes)
	for i := range items {
		class, _, _ := strings.Cut(items[i].id, "/")
		items[i].label, items[i].hasLabel = int32(slices.Index(classes, class)), true
	}
	return items, classes, nil
}

// manifestItems resolves the manifest's entries; errors name the manifest line.
func manifestItems(dir, manifest string) ([]folderItem, error) {
	entries, err := ReadManifest(manifest)
	if err != nil {
		return nil, err
	}
	base := filepath.Dir(manifest)
	var absDir string
	if dir != "" {
		if absDir, err = filepath.Abs(dir); err != nil {
			return nil, fmt.Errorf("data: import folder %s: %w", dir, err)
		}
	}
	seen := map[string]int{}
	items := make([]folderItem, 0, len(entries))
	for _, e := range entries {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("data: manifest %s: line %d: file %q: %s", manifest, e.Line, e.File, fmt.Sprintf(format, args...))
		}
		p := filepath.FromSlash(e.File)
		id := filepath.ToSlash(filepath.Clean(p))
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		p = filepath.Clean(p)
		if line, dup := seen[p]; dup {
			return nil, fail("already listed on line %d", line)
		}
		seen[p] = e.Line
		if !isFolderImage(p) {
			return nil, fail("not a .png, .jpg or .jpeg file")
		}
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			return nil, fail("no such image file %s", p)
		}
		if absDir != "" {
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, fail("%v", err)
			}
			rel, err := filepath.Rel(absDir, abs)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return nil, fail("outside the folder %s", dir)
			}
			id = filepath.ToSlash(rel)
		}
		caption := e.Caption
		if caption == "" {
			if caption, err = sidecarCaption(p); err != nil {
				return nil, fail("%v", err)
			}
		}
		items = append(items, folderItem{path: p, id: id, caption: caption, label: e.Label, hasLabel: e.HasLabel,
			score: e.Score, hasScore: e.HasScore})
	}
	return items, nil
}

// ResizeCrop center-crops img to a square of its shorter side and resamples that square to
// size×size (area averaging when shrinking, bilinear when enlarging), which equals
// resizing the shorter side to size and center-cropping. Gray images stay *image.Gray;
// others become *image.RGBA (premultiplied; opaque images encode as RGB PNG).
func ResizeCrop(img image.Image, size int) image.Image {
	r := img.Bounds()
	side := min(r.Dx(), r.Dy())
	if side == 0 || size <= 0 {
		return image.NewRGBA(image.Rect(0, 0, max(size, 0), max(size, 0)))
	}
	crop := image.Rect(0, 0, side, side).Add(r.Min).Add(image.Pt((r.Dx()-side)/2, (r.Dy()-side)/2))
	if g, ok := img.(*image.Gray); ok {
		pix := make([]uint8, side*side)
		for y := range side {
			o := g.PixOffset(crop.Min.X, crop.Min.Y+y)
			copy(pix[y*side:(y+1)*side], g.Pix[o:o+side])
		}
		return &image.Gray{Pix: resample(pix, side, side, 1, size, size), Stride: size, Rect: image.Rect(0, 0, size, size)}
	}
	src := image.NewRGBA(image.Rect(0, 0, side, side))
	draw.Draw(src, src.Rect, img, crop.Min, draw.Src)
	return &image.RGBA{Pix: resample(src.Pix, side, side, 4, size, size), Stride: 4 * size, Rect: image.Rect(0, 0, size, size)}
}

// resampleTaps are the source indices and weights of one output coordinate.
type resampleTaps struct {
	first   int
	weights []float32
}

// axisTaps returns the taps mapping n source samples to m: area (box) weights when
// shrinking, bilinear (pixel centers aligned, edges clamped) when enlarging.
func axisTaps(n, m int) []resampleTaps {
	taps := make([]resampleTaps, m)
	scale := float64(n) / float64(m)
	for i := range taps {
		if m <= n { // output pixel i covers source interval [lo, hi)
			lo, hi := float64(i)*scale, float64(i+1)*scale
			first := int(math.Floor(lo))
			last := min(n-1, int(math.Ceil(hi))-1)
			w := make([]float32, last-first+1)
			for j := first; j <= last; j++ {
				w[j-first] = float32((math.Min(hi, float64(j+1)) - math.Max(lo, float64(j))) / scale)
			}
			taps[i] = resampleTaps{first, w}
			continue
		}
		x := (float64(i)+0.5)*scale - 0.5
		j := int(math.Floor(x))
		f := float32(x - float64(j))
		j0, j1 := max(j, 0), min(j+1, n-1)
		if j0 >= j1 { // clamped at an edge
			taps[i] = resampleTaps{min(j0, n-1), []float32{1}}
		} else {
			taps[i] = resampleTaps{j0, []float32{1 - f, f}}
		}
	}
	return taps
}

// resample resizes src (sh rows × sw columns × ch interleaved channels, uint8) to dh × dw
// with separable taps (horizontal pass in float32, then vertical), rounding to nearest.
func resample(src []uint8, sw, sh, ch, dw, dh int) []uint8 {
	tx, ty := axisTaps(sw, dw), axisTaps(sh, dh)
	tmp := make([]float32, sh*dw*ch)
	for y := range sh {
		row := src[y*sw*ch : (y+1)*sw*ch]
		for x, t := range tx {
			out := tmp[(y*dw+x)*ch : (y*dw+x+1)*ch]
			for k, w := range t.weights {
				px := row[(t.first+k)*ch : (t.first+k+1)*ch]
				for c := range out {
					out[c] += w * float32(px[c])
				}
			}
		}
	}
	dst := make([]uint8, dh*dw*ch)
	acc := make([]float32, dw*ch)
	for y, t := range ty {
		clear(acc)
		for k, w := range t.weights {
			row := tmp[(t.first+k)*dw*ch : (t.first+k+1)*dw*ch]
			for i, v := range row {
				acc[i] += w * v
			}
		}
		out := dst[y*dw*ch : (y+1)*dw*ch]
		for i, v := range acc {
			out[i] = uint8(min(255, max(0, v+0.5)))
		}
	}
	return dst
}
