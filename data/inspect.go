package data

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// inspectCaptionExamples is the number of captions Inspect prints.
const inspectCaptionExamples = 5

// inspectStats accumulates what Inspect reports over one or more files (shards).
type inspectStats struct {
	rows       int
	labels     map[int32]int
	nullLabels int
	hasLabels  bool
	scores     []float32
	captions   []string // the first few
	nCaptions  int
	sizes      map[[2]int32]int
	classNames []string
	vocab      []string
}

// Inspect prints, for the Parquet files paths (e.g. the shards of one dataset): each
// file's rows, row groups, size, compression and metadata, the schema of the first file,
// then over all files the image sizes, the label histogram with class names, score
// quantiles and caption examples. It reads neither images nor latents.
func Inspect(w io.Writer, paths ...string) error {
	if len(paths) == 0 {
		return fmt.Errorf("data: inspect: no files")
	}
	st := &inspectStats{labels: map[int32]int{}, sizes: map[[2]int32]int{}}
	var schema *arrow.Schema
	for i, path := range paths {
		s, err := inspectFile(w, path, st)
		if err != nil {
			return err
		}
		if i == 0 {
			schema = s
		} else if !s.Equal(schema) {
			fmt.Fprintf(w, "  note: schema differs from %s\n", paths[0])
		}
	}
	fmt.Fprintln(w, "schema:")
	for _, f := range schema.Fields() {
		null := "required"
		if f.Nullable {
			null = "nullable"
		}
		fmt.Fprintf(w, "  %-15s %-16s %s\n", f.Name, f.Type, null)
	}
	st.print(w)
	return nil
}

// inspectFile prints one file's header lines and adds its columns to st.
func inspectFile(w io.Writer, path string, st *inspectStats) (*arrow.Schema, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	defer pf.Close()
	if err := printFileHeader(w, path, pf, st); err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 8192}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	md := pf.MetaData()
	var cols []int
	for _, name := range []string{ColLabel, ColScore, ColCaption, ColWidth, ColHeight} {
		if i := md.Schema.ColumnIndexByName(name); i >= 0 {
			cols = append(cols, i)
		}
	}
	st.rows += int(md.NumRows)
	if len(cols) == 0 {
		return schema, nil
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, nil)
	if err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	defer rr.Release()
	for rr.Next() {
		st.add(rr.RecordBatch())
	}
	if err := rr.Err(); err != nil {
		return nil, fmt.Errorf("data: inspect %s: %w", path, err)
	}
	return schema, nil
}

// printFileHeader prints a file's rows, row groups, size, codec and metadata, keeping the
// class names and vocabulary in st.
func printFileHeader(w io.Writer, path string, pf *file.Reader, st *inspectStats) error {
	md := pf.MetaData()
	size := int64(0)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	codec := "-"
	if md.NumRowGroups() > 0 && md.NumColumns() > 0 {
		if cc, err := md.RowGroup(0).ColumnChunk(0); err == nil {
			codec = strings.ToLower(cc.Compression().String())
		}
	}
	fmt.Fprintf(w, "%s: %d rows, %d row groups, %s, %s\n", path, md.NumRows, md.NumRowGroups(), byteSize(size), codec)
	kv := md.KeyValueMetadata()
	version := "absent"
	if v := kv.FindValue(MetaSchemaVersion); v != nil {
		version = *v
	}
	fmt.Fprintf(w, "  schema version %s", version)
	for _, m := range []struct {
		key  string
		dst  *[]string
		name string
	}{{MetaClassNames, &st.classNames, "class names"}, {MetaVocab, &st.vocab, "vocabulary tokens"}} {
		if v := kv.FindValue(m.key); v != nil {
			var list []string
			if err := json.Unmarshal([]byte(*v), &list); err != nil {
				return fmt.Errorf("data: inspect %s: metadata %s: %w", path, m.key, err)
			}
			*m.dst = list
			fmt.Fprintf(w, ", %d %s", len(list), m.name)
		}
	}
	fmt.Fprintln(w)
	return nil
}

// byteSize formats n bytes as B, kB, MB or GB.
func byteSize(n int64) string {
	switch {
	case n < 1e3:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// add accumulates one record batch (valid only until the reader's next Next).
func (st *inspectStats) add(rec arrow.RecordBatch) {
	col := func(name string) arrow.Array {
		if idx := rec.Schema().FieldIndices(name); len(idx) == 1 {
			return rec.Column(idx[0])
		}
		return nil
	}
	n := int(rec.NumRows())
	if a, ok := col(ColLabel).(*array.Int32); ok {
		st.hasLabels = true
		for i := range n {
			if a.IsNull(i) {
				st.nullLabels++
			} else {
				st.labels[a.Value(i)]++
			}
		}
	}
	if a, ok := col(ColScore).(*array.Float32); ok {
		for i := range n {
			if a.IsValid(i) {
				st.scores = append(st.scores, a.Value(i))
			}
		}
	}
	if a, ok := col(ColCaption).(*array.String); ok {
		for i := range n {
			if a.IsValid(i) && a.Value(i) != "" {
				if st.nCaptions < inspectCaptionExamples {
					st.captions = append(st.captions, strings.Clone(a.Value(i)))
				}
				st.nCaptions++
			}
		}
	}
	wa, okW := col(ColWidth).(*array.Int32)
	ha, okH := col(ColHeight).(*array.Int32)
	if okW && okH {
		for i := range n {
			st.sizes[[2]int32{wa.Value(i), ha.Value(i)}]++
		}
	}
}

// print writes the accumulated summary.
func (st *inspectStats) print(w io.Writer) {
	fmt.Fprintf(w, "rows: %d\n", st.rows)
	if len(st.sizes) > 0 {
		keys := mapKeysSorted(st.sizes, func(a, b [2]int32) int { // most frequent first, then by size
			if c := st.sizes[b] - st.sizes[a]; c != 0 {
				return c
			}
			return int(a[0]-b[0])*1<<16 + int(a[1]-b[1])
		})
		fmt.Fprint(w, "image sizes:")
		for i, k := range keys {
			if i == 5 {
				fmt.Fprintf(w, " … (%d sizes)", len(keys))
				break
			}
			fmt.Fprintf(w, " %dx%d (%d)", k[0], k[1], st.sizes[k])
		}
		fmt.Fprintln(w)
	}
	if st.hasLabels {
		st.printHistogram(w)
	}
	if len(st.scores) > 0 {
		fmt.Fprintln(w, scoreQuantiles(st.scores))
		printScoreHistogram(w, st.scores, st.rows)
	}
	if st.nCaptions > 0 {
		fmt.Fprintf(w, "captions: %d non-empty; first %d:\n", st.nCaptions, len(st.captions))
		for _, c := range st.captions {
			fmt.Fprintf(w, "  %q\n", c)
		}
	}
}

// printHistogram writes one line per label: index, class name, count, share and a bar.
func (st *inspectStats) printHistogram(w io.Writer) {
	fmt.Fprintf(w, "labels: %d classes present", len(st.labels))
	if st.nullLabels > 0 {
		fmt.Fprintf(w, ", %d rows without a label", st.nullLabels)
	}
	fmt.Fprintln(w)
	keys := mapKeysSorted(st.labels, func(a, b int32) int { return int(a - b) })
	most := 0
	for _, c := range st.labels {
		most = max(most, c)
	}
	for _, k := range keys {
		name := ""
		if k >= 0 && int(k) < len(st.classNames) {
			name = st.classNames[k]
		}
		c := st.labels[k]
		fmt.Fprintf(w, "  %5d %-20s %8d %5.1f%% %s\n", k, name, c, 100*float64(c)/float64(max(st.rows, 1)),
			strings.Repeat("#", (40*c+most-1)/most))
	}
}

// mapKeysSorted returns m's keys ordered by cmp.
func mapKeysSorted[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

// scoreQuantiles is one line: the number of scores, min, p10, p25, median, p75, p90, max
// (nearest-rank quantiles).
func scoreQuantiles(scores []float32) string {
	if len(scores) == 0 {
		return "scores: none"
	}
	s := slices.Clone(scores)
	slices.Sort(s)
	q := func(p float64) float32 { return s[int(p*float64(len(s)-1)+0.5)] }
	return fmt.Sprintf("scores: %d  min %.4g  p10 %.4g  p25 %.4g  median %.4g  p75 %.4g  p90 %.4g  max %.4g",
		len(s), s[0], q(0.1), q(0.25), q(0.5), q(0.75), q(0.9), s[len(s)-1])
}

// scoreHistogramBins is the number of equal-width bins of Inspect's score histogram.
const scoreHistogramBins = 10

// printScoreHistogram writes the scores' histogram over [min, max] in equal-width bins (the
// last one closed), one line per bin: range, count, share of all rows and a bar. Non-finite
// scores are left out.
func printScoreHistogram(w io.Writer, scores []float32, rows int) {
	scores = slices.DeleteFunc(slices.Clone(scores), func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) })
	if len(scores) == 0 {
		return
	}
	lo, hi := float64(slices.Min(scores)), float64(slices.Max(scores))
	bins := scoreHistogramBins
	if hi == lo {
		bins = 1
	}
	counts := make([]int, bins)
	for _, v := range scores {
		b := 0
		if bins > 1 {
			b = min(int(float64(bins)*(float64(v)-lo)/(hi-lo)), bins-1)
		}
		counts[b]++
	}
	most := slices.Max(counts)
	fmt.Fprintf(w, "score histogram (%d bins):\n", bins)
	for b, c := range counts {
		a, z, closing := lo+(hi-lo)*float64(b)/float64(bins), lo+(hi-lo)*float64(b+1)/float64(bins), ")"
		if b == bins-1 {
			closing = "]"
		}
		bar := ""
		if most > 0 {
			bar = strings.Repeat("#", (40*c+most-1)/most)
		}
		fmt.Fprintf(w, "  [%9.4g, %9.4g%s %8d %5.1f%% %s\n", a, z, closing, c, 100*float64(c)/float64(max(rows, 1)), bar)
	}
}
