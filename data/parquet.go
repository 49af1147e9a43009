package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// readableVersions are the values of MetaSchemaVersion this reader accepts (absent = "1").
var readableVersions = []string{"1", "2"}

// source is one Parquet file of a Stream, open for the stream's lifetime. Its reads are not
// safe for concurrent use; a Stream reads each file from one goroutine at a time.
type source struct {
	path       string
	size       int64
	pf         *file.Reader
	fr         *pqarrow.FileReader
	schema     *arrow.Schema
	groupRows  []int64 // rows of each row group
	groupStart []int64 // file row index of each row group's first row
	classNames []string
	vocab      []string
}

// expandGlobs returns the files named by list (comma-separated paths or globs): each glob's
// matches sorted by name, globs in list order, duplicates dropped. A glob matching nothing
// is an error naming it. A list that names an existing file as a whole is that file (so a
// single path may contain commas).
func expandGlobs(list string) ([]string, error) {
	if st, err := os.Stat(list); err == nil && !st.IsDir() {
		return []string{list}, nil
	}
	globs := splitGlobs(list)
	if len(globs) == 0 {
		return nil, errors.New("data.train: no file or glob given")
	}
	var out []string
	seen := map[string]bool{}
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("data.train: glob %q: %w", g, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("data.train: %q matches no file", g)
		}
		sort.Strings(matches)
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// openSource opens path and reads its footer: row groups, schema and key-value metadata
// (schema version, class names, vocabulary). It checks that every column chunk lies inside
// the file, so a truncated file fails here rather than mid-training.
func openSource(path string, readBatchRows int) (_ *source, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data: open %s: %w", path, err)
	}
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("data: open %s: not a readable Parquet file (truncated or corrupt?): %w", path, err)
	}
	defer func() {
		if err != nil {
			pf.Close()
		}
	}()
	s := &source{path: path, size: st.Size(), pf: pf}
	if err := s.checkChunks(); err != nil {
		return nil, err
	}
	props := pqarrow.ArrowReadProperties{BatchSize: int64(max(readBatchRows, 1))}
	if s.fr, err = pqarrow.NewFileReader(pf, props, memory.DefaultAllocator); err != nil {
		return nil, fmt.Errorf("data: open %s: arrow schema: %w", path, err)
	}
	if s.schema, err = s.fr.Schema(); err != nil {
		return nil, fmt.Errorf("data: open %s: arrow schema: %w", path, err)
	}
	if s.classNames, s.vocab, err = readMetadata(pf, path); err != nil {
		return nil, err
	}
	return s, nil
}

// checkChunks records the row-group sizes and checks every column chunk's byte range.
func (s *source) checkChunks() error {
	md := s.pf.MetaData()
	var start int64
	for g := range md.NumRowGroups() {
		rg := md.RowGroup(g)
		s.groupRows = append(s.groupRows, rg.NumRows())
		s.groupStart = append(s.groupStart, start)
		start += rg.NumRows()
		for c := range md.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return fmt.Errorf("data: open %s: row group %d, column %d: %w", s.path, g, c, err)
			}
			off := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 {
				off = min(off, cc.DictionaryPageOffset())
			}
			if end := off + cc.TotalCompressedSize(); off < 0 || end > s.size {
				return fmt.Errorf("data: open %s: row group %d, column %s: bytes %d to %d lie beyond the file's %d bytes (truncated file?)",
					s.path, g, cc.PathInSchema(), off, end, s.size)
			}
		}
	}
	if start != md.NumRows {
		return fmt.Errorf("data: open %s: row groups hold %d rows, the footer says %d", s.path, start, md.NumRows)
	}
	return nil
}

// readMetadata checks the schema version and returns the class names and the caption
// vocabulary (each nil if absent).
func readMetadata(pf *file.Reader, path string) (classNames, vocab []string, err error) {
	kv := pf.MetaData().KeyValueMetadata()
	if v := kv.FindValue(MetaSchemaVersion); v != nil && !slices.Contains(readableVersions, *v) {
		return nil, nil, fmt.Errorf("data: %s: metadata %s is %q, this reader knows %q", path, MetaSchemaVersion, *v, readableVersions)
	}
	for _, m := range []struct {
		key string
		dst *[]string
	}{{MetaClassNames, &classNames}, {MetaVocab, &vocab}} {
		if v := kv.FindValue(m.key); v != nil {
			if err := json.Unmarshal([]byte(*v), m.dst); err != nil {
				return nil, nil, fmt.Errorf("data: %s: metadata %s: %w", path, m.key, err)
			}
			if len(*m.dst) == 0 { // an empty list names nothing: such a file mixes with any other
				*m.dst = nil
			}
		}
	}
	return classNames, vocab, nil
}

func (s *source) close() error { return s.pf.Close() }

// has reports whether the file has a top-level column name.
func (s *source) has(name string) bool { return len(s.schema.FieldIndices(name)) > 0 }

// columnKind is the logical type a reader needs of a column.
type columnKind int

const (
	kindBinary columnKind = iota
	kindInt
	kindFloat
	kindString
	kindFloatList
	kindIntList
)

var kindNames = [...]string{"binary", "int32", "float32", "string", "list<float32>", "list<int32>"}

// accepts reports whether an Arrow type can be read as kind.
func (k columnKind) accepts(t arrow.DataType) bool {
	switch k {
	case kindBinary:
		return t.ID() == arrow.BINARY || t.ID() == arrow.LARGE_BINARY
	case kindInt:
		return t.ID() == arrow.INT32 || t.ID() == arrow.INT64
	case kindFloat:
		return t.ID() == arrow.FLOAT32 || t.ID() == arrow.FLOAT64
	case kindString:
		return t.ID() == arrow.STRING || t.ID() == arrow.LARGE_STRING
	case kindFloatList:
		if l, ok := t.(arrow.ListLikeType); ok {
			return l.Elem().ID() == arrow.FLOAT32
		}
	case kindIntList:
		if l, ok := t.(arrow.ListLikeType); ok {
			return l.Elem().ID() == arrow.INT32
		}
	}
	return false
}

// check fails, naming file and column, if the column is missing or not readable as kind.
func (s *source) check(name string, kind columnKind) error {
	idx := s.schema.FieldIndices(name)
	if len(idx) == 0 {
		return fmt.Errorf("data: %s: column %s: not in the file (columns: %s)", s.path, name, s.columnNames())
	}
	if t := s.schema.Field(idx[0]).Type; !kind.accepts(t) {
		return fmt.Errorf("data: %s: column %s: type %s, want %s", s.path, name, t, kindNames[kind])
	}
	return nil
}

func (s *source) columnNames() string {
	var names []string
	for _, f := range s.schema.Fields() {
		names = append(names, f.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprint(names)
}

// leaves returns the Parquet leaf-column indices of the top-level columns names.
func (s *source) leaves(names ...string) []int {
	sc := s.pf.MetaData().Schema
	var idx []int
	for i := range sc.NumColumns() {
		if path := sc.Column(i).ColumnPath(); len(path) > 0 && slices.Contains(names, path[0]) {
			idx = append(idx, i)
		}
	}
	return idx
}

// readGroup reads the named columns of row group g; the caller releases the table.
func (s *source) readGroup(g int, names ...string) (arrow.Table, error) {
	tbl, err := s.fr.ReadRowGroups(context.Background(), s.leaves(names...), []int{g})
	if err != nil {
		return nil, fmt.Errorf("data: %s: row group %d, columns %v: %w", s.path, g, names, err)
	}
	if tbl.NumRows() != s.groupRows[g] {
		tbl.Release()
		return nil, fmt.Errorf("data: %s: row group %d: read %d rows, the footer says %d", s.path, g, tbl.NumRows(), s.groupRows[g])
	}
	return tbl, nil
}

// column gives row-indexed access to one column of a table read by readGroup.
type column struct {
	chunks []arrow.Array
	ends   []int // ends[i] is one past chunk i's last row
}

// tableColumn returns the named column of tbl (which readGroup read with that name).
func tableColumn(tbl arrow.Table, name string) column {
	var c column
	idx := tbl.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return c
	}
	n := 0
	for _, a := range tbl.Column(idx[0]).Data().Chunks() {
		n += a.Len()
		c.chunks = append(c.chunks, a)
		c.ends = append(c.ends, n)
	}
	return c
}

// at returns the chunk holding row i and i's index in it.
func (c column) at(i int) (arrow.Array, int) {
	k := sort.SearchInts(c.ends, i+1)
	if k == 0 {
		return c.chunks[0], i
	}
	return c.chunks[k], i - c.ends[k-1]
}

// isNull reports whether row i is null.
func (c column) isNull(i int) bool {
	a, j := c.at(i)
	return a.IsNull(j)
}

// int64At returns row i of an int32/int64 column.
func (c column) int64At(i int) int64 {
	switch a, j := c.at(i); a := a.(type) {
	case *array.Int32:
		return int64(a.Value(j))
	case *array.Int64:
		return a.Value(j)
	}
	return 0
}

// float64At returns row i of a float32/float64 column.
func (c column) float64At(i int) float64 {
	switch a, j := c.at(i); a := a.(type) {
	case *array.Float32:
		return float64(a.Value(j))
	case *array.Float64:
		return a.Value(j)
	}
	return 0
}

// stringAt returns row i of a string column ("" for null).
func (c column) stringAt(i int) string {
	switch a, j := c.at(i); a := a.(type) {
	case *array.String:
		return a.Value(j)
	case *array.LargeString:
		return a.Value(j)
	}
	return ""
}

// bytesAt returns row i of a binary column; the bytes are valid until the table is released.
func (c column) bytesAt(i int) []byte {
	a, j := c.at(i)
	if b, ok := a.(byteValues); ok {
		return b.Value(j)
	}
	return nil
}

// intsAt returns row i of a list<int32> column; valid until the table is released.
func (c column) intsAt(i int) []int32 {
	a, j := c.at(i)
	l, ok := a.(array.ListLike)
	if !ok {
		return nil
	}
	values, ok := l.ListValues().(*array.Int32)
	if !ok {
		return nil
	}
	start, end := l.ValueOffsets(j)
	return values.Int32Values()[start:end]
}

// floatsAt returns row i of a list<float32> column; valid until the table is released.
func (c column) floatsAt(i int) []float32 {
	a, j := c.at(i)
	l, ok := a.(array.ListLike)
	if !ok {
		return nil
	}
	values, ok := l.ListValues().(*array.Float32)
	if !ok {
		return nil
	}
	start, end := l.ValueOffsets(j)
	return values.Float32Values()[start:end]
}

// byteValues is the part of *array.Binary and *array.LargeBinary that decoding needs.
type byteValues interface {
	arrow.Array
	Value(i int) []byte
}
