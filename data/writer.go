package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

const (
	// schemaVersion is what writeImageParquet writes (the v1 subset of the schema).
	schemaVersion = "1"

	// writeChunkRows is the number of rows per Arrow record handed to WriteBuffered; it is
	// independent of the row-group size, which WriteBuffered enforces.
	writeChunkRows = 2048
)

// imageSchema is the Arrow schema of one Parquet image row; all fields are required.
var imageSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColImage, Type: arrow.BinaryTypes.Binary},
	{Name: ColLabel, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColCaption, Type: arrow.BinaryTypes.String},
	{Name: ColWidth, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColHeight, Type: arrow.PrimitiveTypes.Int32},
}, nil)

// imageRow is one row of the Parquet image schema.
type imageRow struct {
	PNG           []byte
	Label         int32
	Caption       string
	Width, Height int32
}

// writeImageParquet writes rows to outPath atomically (temp file in the same directory,
// fsync, rename), creating parent directories. Row groups hold at most rowGroupRows rows;
// the image column has no dictionary and no statistics; every column is zstd-compressed.
// classNames (may be nil) go to the file metadata as a JSON array.
func writeImageParquet(outPath string, rows []imageRow, classNames []string, rowGroupRows int) (err error) {
	if rowGroupRows <= 0 {
		return fmt.Errorf("data: write %s: row group size must be positive, got %d", outPath, rowGroupRows)
	}
	dir := filepath.Dir(outPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data: write %s: %w", outPath, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(outPath)+".tmp-*")
	if err != nil {
		return fmt.Errorf("data: write %s: %w", outPath, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := writeImageRows(tmp, rows, classNames, rowGroupRows); err != nil {
		return fmt.Errorf("data: write %s: %w", outPath, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("data: write %s: sync: %w", outPath, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("data: write %s: close: %w", outPath, err)
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return fmt.Errorf("data: write %s: %w", outPath, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable; best effort
		d.Sync()
		d.Close()
	}
	return nil
}

// writerOnly hides Close so that pqarrow's FileWriter.Close does not close the file
// before writeImageParquet has synced it.
type writerOnly struct{ io.Writer }

// writeImageRows writes rows as a Parquet stream to w.
func writeImageRows(w io.Writer, rows []imageRow, classNames []string, rowGroupRows int) error {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryFor(ColImage, false),
		parquet.WithStatsFor(ColImage, false),
		parquet.WithMaxRowGroupLength(int64(rowGroupRows)),
	)
	fw, err := pqarrow.NewFileWriter(imageSchema, writerOnly{w}, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	meta := map[string]string{MetaSchemaVersion: schemaVersion}
	if classNames != nil {
		names, err := json.Marshal(classNames)
		if err != nil {
			return errors.Join(err, fw.Close())
		}
		meta[MetaClassNames] = string(names)
	}
	for _, key := range []string{MetaSchemaVersion, MetaClassNames} {
		if v, ok := meta[key]; ok {
			if err := fw.AppendKeyValueMetadata(key, v); err != nil {
				return errors.Join(fmt.Errorf("metadata %s: %w", key, err), fw.Close())
			}
		}
	}
	for start := 0; start < len(rows); start += writeChunkRows {
		end := min(start+writeChunkRows, len(rows))
		rec := buildImageRecord(rows[start:end])
		err := fw.WriteBuffered(rec)
		rec.Release()
		if err != nil {
			return errors.Join(fmt.Errorf("rows %d to %d: %w", start, end-1, err), fw.Close())
		}
	}
	return fw.Close()
}

// buildImageRecord converts rows to one Arrow record batch of imageSchema.
func buildImageRecord(rows []imageRow) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, imageSchema)
	defer b.Release()
	images := b.Field(0).(*array.BinaryBuilder)
	labels := b.Field(1).(*array.Int32Builder)
	captions := b.Field(2).(*array.StringBuilder)
	widths := b.Field(3).(*array.Int32Builder)
	heights := b.Field(4).(*array.Int32Builder)
	for _, r := range rows {
		images.Append(r.PNG)
		labels.Append(r.Label)
		captions.Append(r.Caption)
		widths.Append(r.Width)
		heights.Append(r.Height)
	}
	return b.NewRecordBatch()
}
