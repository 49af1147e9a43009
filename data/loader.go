package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// This file holds the v1 in-memory API: Load reads one whole Parquet file into a Dataset and
// Loader shuffles it. New code should use Open and Stream, which stream any number of files.

// Dataset holds a whole split decoded in memory.
type Dataset struct {
	// N is the number of examples; H, W, C the padded image shape (H = W = Config.ImageSize).
	N, H, W, C int
	// Pixels holds the images, uint8 [N, H, W, C] row-major (channels-last); padding is 0.
	Pixels []uint8
	// Labels holds the class of each example, int32 [N], each in [0, Config.NumClasses).
	Labels []int32
	// ClassNames are the captions indexed by label, from the file metadata; nil if absent.
	ClassNames []string
	// Path is the Parquet file the split was loaded from.
	Path string
}

// Image returns example i's pixels, uint8 [H, W, C], sharing memory with d.Pixels.
func (d *Dataset) Image(i int) []uint8 {
	size := d.H * d.W * d.C
	return d.Pixels[i*size : (i+1)*size]
}

// Load reads the Parquet file path (schema version 1 or 2) into memory; prefer Open, which
// streams several files. It streams record batches of cfg.ReadBatchRows rows reading only
// the image and label columns, decodes each PNG or JPEG
// (grayscale, RGB or RGBA; alpha is composited over black) to cfg.Channels, centers it on a
// black canvas [cfg.ImageSize, cfg.ImageSize, cfg.Channels], and checks that every label
// lies in [0, cfg.NumClasses). Decoding runs on runtime.GOMAXPROCS workers; the result
// keeps the file order. Errors name the file, the column and the row.
func Load(path string, cfg Config) (*Dataset, error) {
	if err := cfg.validateShape(); err != nil {
		return nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("data: load %s: open parquet: %w", path, err)
	}
	defer pf.Close()
	ds := &Dataset{N: int(pf.NumRows()), H: cfg.ImageSize, W: cfg.ImageSize, C: cfg.Channels, Path: path}
	if ds.ClassNames, _, err = readMetadata(pf, path); err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(cfg.ReadBatchRows)}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	cols, err := projectColumns(pf, path, ColImage, ColLabel)
	if err != nil {
		return nil, err
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, nil)
	if err != nil {
		return nil, fmt.Errorf("data: load %s: columns %s, %s: %w", path, ColImage, ColLabel, err)
	}
	defer rr.Release()
	ds.Pixels = make([]uint8, ds.N*ds.H*ds.W*ds.C)
	ds.Labels = make([]int32, ds.N)
	row := 0
	for rr.Next() {
		// The batch is valid only until the next Next(): decodeBatch copies everything out.
		rec := rr.RecordBatch()
		if err := ds.decodeBatch(rec, row, cfg); err != nil {
			return nil, err
		}
		row += int(rec.NumRows())
	}
	if err := rr.Err(); err != nil {
		return nil, fmt.Errorf("data: load %s: read record batch at row %d: %w", path, row, err)
	}
	if row != ds.N {
		return nil, fmt.Errorf("data: load %s: read %d rows, file metadata says %d", path, row, ds.N)
	}
	return ds, nil
}

// projectColumns returns the Parquet leaf-column indices of the named columns.
func projectColumns(pf *file.Reader, path string, names ...string) ([]int, error) {
	idx := make([]int, len(names))
	for i, name := range names {
		if idx[i] = pf.MetaData().Schema.ColumnIndexByName(name); idx[i] < 0 {
			return nil, fmt.Errorf("data: load %s: column %s: not in the file", path, name)
		}
	}
	return idx, nil
}

// decodeBatch checks the labels and decodes the images of rec (file rows base…) into d.
func (d *Dataset) decodeBatch(rec arrow.RecordBatch, base int, cfg Config) error {
	n := int(rec.NumRows())
	if base+n > d.N {
		return fmt.Errorf("data: load %s: rows %d to %d: more rows than the metadata's %d", d.Path, base, base+n-1, d.N)
	}
	if err := d.copyLabels(rec, base, cfg.NumClasses); err != nil {
		return err
	}
	col, err := batchColumn(rec, ColImage, d.Path, base)
	if err != nil {
		return err
	}
	images, ok := col.(byteValues)
	if !ok {
		return fmt.Errorf("data: load %s: column %s: type %s, want binary", d.Path, ColImage, col.DataType())
	}
	return parallelRange(n, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			row := base + i
			if images.IsNull(i) {
				return fmt.Errorf("data: load %s: column %s, row %d: null image", d.Path, ColImage, row)
			}
			if err := decodeImage(d.Image(row), images.Value(i), d.H, d.C); err != nil {
				return fmt.Errorf("data: load %s: column %s, row %d: %w", d.Path, ColImage, row, err)
			}
		}
		return nil
	})
}

// copyLabels copies the label column of rec into d.Labels[base:], checking [0, numClasses).
func (d *Dataset) copyLabels(rec arrow.RecordBatch, base, numClasses int) error {
	col, err := batchColumn(rec, ColLabel, d.Path, base)
	if err != nil {
		return err
	}
	var value func(i int) int64
	switch a := col.(type) {
	case *array.Int32:
		value = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int64:
		value = func(i int) int64 { return a.Value(i) }
	default:
		return fmt.Errorf("data: load %s: column %s: type %s, want int32", d.Path, ColLabel, col.DataType())
	}
	for i := range int(rec.NumRows()) {
		row := base + i
		if col.IsNull(i) {
			return fmt.Errorf("data: load %s: column %s, row %d: null label", d.Path, ColLabel, row)
		}
		l := value(i)
		if l < 0 || l >= int64(numClasses) {
			return fmt.Errorf("data: load %s: column %s, row %d: label %d out of range [0, %d) (data.num_classes)", d.Path, ColLabel, row, l, numClasses)
		}
		d.Labels[row] = int32(l)
	}
	return nil
}

// batchColumn returns the named column of rec.
func batchColumn(rec arrow.RecordBatch, name, path string, base int) (arrow.Array, error) {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		return nil, fmt.Errorf("data: load %s: column %s: missing from record batch at row %d", path, name, base)
	}
	return rec.Column(idx[0]), nil
}

// Loader yields shuffled mini-batches of a Dataset. The order of epoch e is a permutation
// of [0, N) that is a pure function of (seed, e) (see epochPermutation), so resuming at a
// saved Position reproduces exactly the same batches. Batches cross epoch boundaries
// seamlessly: the last partial batch of epoch e is completed from epoch e+1. A Loader is
// not safe for concurrent use.
type Loader struct {
	ds        *Dataset
	batchSize int
	seed      uint64
	pos       Position
	perm      []int32 // order of epoch permEpoch
	permEpoch int64   // -1: perm not computed
	scale     [256]float32
}

// NewLoader returns a Loader at Position{0, 0} yielding batches of batchSize examples
// (batchSize may exceed ds.N: a batch then spans several epochs).
func NewLoader(ds *Dataset, batchSize int, seed uint64) (*Loader, error) {
	if ds == nil {
		return nil, errors.New("data: new loader: nil dataset")
	}
	if ds.N <= 0 || ds.N > math.MaxInt32 {
		return nil, fmt.Errorf("data: new loader for %s: %d examples, want 1 to %d", ds.Path, ds.N, math.MaxInt32)
	}
	if batchSize <= 0 {
		return nil, fmt.Errorf("data: new loader for %s: batch size must be positive, got %d", ds.Path, batchSize)
	}
	if want := ds.N * ds.H * ds.W * ds.C; len(ds.Pixels) != want || ds.H <= 0 || ds.W <= 0 || ds.C <= 0 {
		return nil, fmt.Errorf("data: new loader for %s: Pixels has %d values, want N*H*W*C = %d*%d*%d*%d = %d",
			ds.Path, len(ds.Pixels), ds.N, ds.H, ds.W, ds.C, want)
	}
	if len(ds.Labels) != ds.N {
		return nil, fmt.Errorf("data: new loader for %s: Labels has %d values, want N = %d", ds.Path, len(ds.Labels), ds.N)
	}
	l := &Loader{ds: ds, batchSize: batchSize, seed: seed, permEpoch: -1, perm: make([]int32, ds.N)}
	for p := range l.scale {
		l.scale[p] = float32(p)/127.5 - 1
	}
	return l, nil
}

// BatchSize returns B, the number of examples per batch.
func (l *Loader) BatchSize() int { return l.batchSize }

// Position returns the position of the next example; Index is always in [0, N).
func (l *Loader) Position() Position { return l.pos }

// SetPosition moves the loader to p, e.g. one restored from a checkpoint.
func (l *Loader) SetPosition(p Position) error {
	if p.Epoch < 0 || p.Index < 0 || p.Index >= int64(l.ds.N) {
		return fmt.Errorf("data: loader for %s: set position {epoch %d, index %d}: want epoch >= 0 and index in [0, %d)",
			l.ds.Path, p.Epoch, p.Index, l.ds.N)
	}
	l.pos = p
	return nil
}

// Next fills x, float32 [B, H, W, C] with pixel/127.5 - 1 in [-1, 1], and labels, int32 [B],
// with the next B examples, and advances the position by B.
func (l *Loader) Next(x []float32, labels []int32) error {
	ds := l.ds
	size := ds.H * ds.W * ds.C
	if len(x) != l.batchSize*size || len(labels) != l.batchSize {
		return fmt.Errorf("data: loader for %s: next: got len(x)=%d, len(labels)=%d, want B*H*W*C = %d*%d*%d*%d = %d and B = %d",
			ds.Path, len(x), len(labels), l.batchSize, ds.H, ds.W, ds.C, l.batchSize*size, l.batchSize)
	}
	for b := range l.batchSize {
		if l.permEpoch != l.pos.Epoch {
			epochPermutation(l.perm, l.seed, l.pos.Epoch)
			l.permEpoch = l.pos.Epoch
		}
		i := int(l.perm[l.pos.Index])
		dst := x[b*size : (b+1)*size]
		for k, p := range ds.Pixels[i*size : (i+1)*size] {
			dst[k] = l.scale[p]
		}
		labels[b] = ds.Labels[i]
		if l.pos.Index++; l.pos.Index == int64(ds.N) {
			l.pos = Position{Epoch: l.pos.Epoch + 1}
		}
	}
	return nil
}

// epochPermutation fills perm with the example order of epoch: a Fisher–Yates shuffle of
// [0, len(perm)) driven by math/rand/v2's PCG seeded with (seed, epoch), with unbiased
// bounded integers by Lemire's multiply-and-reject. Only PCG's output stream is relied on,
// not rand.Perm, whose algorithm Go does not promise to keep.
func epochPermutation(perm []int32, seed uint64, epoch int64) {
	src := rand.NewPCG(seed, uint64(epoch))
	for i := range perm {
		perm[i] = int32(i)
	}
	for i := len(perm) - 1; i > 0; i-- {
		j := boundedUint64(src, uint64(i)+1)
		perm[i], perm[j] = perm[j], perm[i]
	}
}

// boundedUint64 returns a uniform integer in [0, n), n > 0 (Lemire 2019, "Fast random
// integer generation in an interval", Algorithm 5).
func boundedUint64(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		threshold := -n % n
		for lo < threshold {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}
