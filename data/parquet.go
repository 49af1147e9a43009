package data

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

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

// Load reads the Parquet file path into memory. It streams record batches of
// cfg.ReadBatchRows rows reading only the image and label columns, decodes each PNG
// (grayscale, RGB or RGBA; alpha is composited over black) to cfg.Channels, centers it on a
// black canvas [cfg.ImageSize, cfg.ImageSize, cfg.Channels], and checks that every label
// lies in [0, cfg.NumClasses). PNG decoding runs on runtime.GOMAXPROCS workers; the result
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
	if ds.ClassNames, err = readFileMetadata(pf, path); err != nil {
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

// readFileMetadata checks the schema version and returns the class names (nil if absent).
func readFileMetadata(pf *file.Reader, path string) ([]string, error) {
	kv := pf.MetaData().KeyValueMetadata()
	if v := kv.FindValue(MetaSchemaVersion); v != nil && *v != schemaVersion {
		return nil, fmt.Errorf("data: load %s: metadata %s is %q, this reader knows %q", path, MetaSchemaVersion, *v, schemaVersion)
	}
	v := kv.FindValue(MetaClassNames)
	if v == nil {
		return nil, nil
	}
	var names []string
	if err := json.Unmarshal([]byte(*v), &names); err != nil {
		return nil, fmt.Errorf("data: load %s: metadata %s: %w", path, MetaClassNames, err)
	}
	return names, nil
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

// byteValues is the part of *array.Binary and *array.LargeBinary that decoding needs.
type byteValues interface {
	arrow.Array
	Value(i int) []byte
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
