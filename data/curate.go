package data

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Curation is the score-based row selection of a data config — data.top_k,
// data.top_k_per_class, data.min_score with data.use_min_score — for previewing what a run
// would train on (Emu quality tuning, arXiv 2309.15807: a small, high-quality subset).
// InspectCuration and CurationGrid apply it with the loader's own selection code (Open's
// filters, then its top-K: ties keep the earlier row), so the preview is the run's subset.
type Curation struct {
	TopK        int     // keep the TopK highest-scoring rows (data.top_k); 0: off
	PerClass    bool    // apply TopK per label (data.top_k_per_class)
	MinScore    float64 // with UseMinScore, keep rows with score >= MinScore (data.min_score)
	UseMinScore bool    // data.use_min_score
}

// Active reports whether c selects anything (top-K or a minimum score).
func (c Curation) Active() bool { return c.TopK > 0 || c.UseMinScore }

// Validate reports invalid settings, naming the data.* key.
func (c Curation) Validate() error { return errors.Join(c.config(nil).validateStream()...) }

// String names the active settings as the loader's messages do.
func (c Curation) String() string { return filterSummary(c.config(nil)) }

// config is the data config whose only filters are c's, over the files paths.
func (c Curation) config(paths []string) Config {
	cfg := DefaultConfig()
	cfg.Train, cfg.Condition = strings.Join(paths, ","), ConditionNone
	cfg.TopK, cfg.TopKPerClass, cfg.MinScore, cfg.UseMinScore = c.TopK, c.PerClass, c.MinScore, c.UseMinScore
	return cfg
}

// curated is what a Curation keeps of some files, with every row's label and score.
type curated struct {
	files      []string
	kept       [][]bool  // [file][row]
	info       []rowInfo // [file]
	labelled   bool      // every file has a label column
	classNames []string
}

// rowInfo holds one file's labels and scores ([rows] each; has* false for nulls or no column).
type rowInfo struct {
	label    []int32
	hasLabel []bool
	score    []float32
	hasScore []bool
}

// curate applies c to the files paths the way Open applies a config's filters.
func curate(paths []string, c Curation) (_ *curated, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var sources []*source
	defer func() {
		for _, s := range sources {
			s.close()
		}
	}()
	for _, p := range paths {
		s, err := openSource(p, DefaultConfig().ReadBatchRows)
		if err != nil {
			return nil, err
		}
		sources = append(sources, s)
	}
	cfg := c.config(paths)
	cfg.ImageSize = math.MaxInt32 // a preview decodes no image: no size limit
	f, err := filterRows(cfg, sources)
	if err != nil {
		return nil, err
	}
	cur := &curated{files: paths, classNames: f.classNames, labelled: true}
	for _, s := range sources {
		cur.kept = append(cur.kept, make([]bool, s.pf.NumRows()))
		info, err := readRowInfo(s)
		if err != nil {
			return nil, err
		}
		cur.info = append(cur.info, info)
		cur.labelled = cur.labelled && s.has(ColLabel)
	}
	for _, i := range f.keep {
		cd := f.cands[i]
		cur.kept[cd.src][sources[cd.src].groupStart[cd.group]+int64(cd.row)] = true
	}
	return cur, nil
}

// readRowInfo reads the label and score columns of s (those it has).
func readRowInfo(s *source) (rowInfo, error) {
	n := int(s.pf.NumRows())
	info := rowInfo{label: make([]int32, n), hasLabel: make([]bool, n), score: make([]float32, n), hasScore: make([]bool, n)}
	var names []string
	for _, c := range []struct {
		name string
		kind columnKind
	}{{ColLabel, kindInt}, {ColScore, kindFloat}} {
		if s.has(c.name) {
			if err := s.check(c.name, c.kind); err != nil {
				return info, err
			}
			names = append(names, c.name)
		}
	}
	if len(names) == 0 {
		return info, nil
	}
	for g := range s.groupRows {
		tbl, err := s.readGroup(g, names...)
		if err != nil {
			return info, err
		}
		labels, scores := tableColumn(tbl, ColLabel), tableColumn(tbl, ColScore)
		for i := range int(s.groupRows[g]) {
			r := int(s.groupStart[g]) + i
			if labels.chunks != nil && !labels.isNull(i) {
				info.label[r], info.hasLabel[r] = int32(labels.int64At(i)), true
			}
			if scores.chunks != nil && !scores.isNull(i) {
				info.score[r], info.hasScore[r] = float32(scores.float64At(i)), true
			}
		}
		tbl.Release()
	}
	return info, nil
}

// InspectCuration prints what c keeps of the files paths (the shards of one dataset): the
// number and share of kept rows and, when the files have labels, the kept rows per class.
// It reads no image.
func InspectCuration(w io.Writer, c Curation, paths ...string) error {
	if len(paths) == 0 {
		return fmt.Errorf("data: inspect: no files")
	}
	cur, err := curate(paths, c)
	if err != nil {
		return err
	}
	total, kept := 0, 0
	perClass, keptPerClass := map[int32]int{}, map[int32]int{}
	for f, info := range cur.info {
		for r, k := range cur.kept[f] {
			total++
			label := int32(-1) // unlabelled
			if info.hasLabel[r] {
				label = info.label[r]
			}
			perClass[label]++
			if k {
				kept++
				keptPerClass[label]++
			}
		}
	}
	fmt.Fprintf(w, "curation (%s): keeps %d of %d rows (%.1f%%)\n", c, kept, total, 100*float64(kept)/float64(max(total, 1)))
	if !cur.labelled {
		return nil
	}
	fmt.Fprintln(w, "kept per class:")
	for _, k := range mapKeysSorted(perClass, func(a, b int32) int { return cmp.Compare(uint32(a), uint32(b)) }) { // -1 (no label) last
		name := "(no label)"
		if k >= 0 {
			name = strconv.Itoa(int(k))
			if int(k) < len(cur.classNames) {
				name += " " + cur.classNames[k]
			}
		}
		fmt.Fprintf(w, "  %-26s %8d of %8d %5.1f%%\n", name, keptPerClass[k], perClass[k], 100*float64(keptPerClass[k])/float64(perClass[k]))
	}
	return nil
}

// curationGroup is one row of a curation grid: a class (or all rows) and the file rows it
// shows, kept and rejected.
type curationGroup struct {
	kept, rejected []int
}

// CurationGrid draws what c keeps of the Parquet file path as a PNG at outPNG (written
// atomically): one grid row per class (unlabelled rows last; one row for a file without
// labels) showing its first n kept images in file order, a red bar, then its n
// lowest-scoring rejected images (rows without a score first; ties in file order). Each
// image has its score below it ("-" for none).
func CurationGrid(path string, c Curation, n int, outPNG string) error {
	if n <= 0 {
		return fmt.Errorf("data: grid %s: n = %d, want > 0", path, n)
	}
	cur, err := curate([]string{path}, c)
	if err != nil {
		return err
	}
	groups := curationGroups(cur, n)
	rows, _, err := readGridRows(path, func(total int) ([]bool, int) {
		pick, k := make([]bool, total), 0
		for _, g := range groups {
			for _, r := range append(slices.Clone(g.kept), g.rejected...) {
				pick[r] = true
				k++
			}
		}
		return pick, k
	})
	if err != nil {
		return err
	}
	images := map[int]image.Image{}
	for _, r := range rows {
		images[r.row] = r.img
	}
	return writePNGAtomic(outPNG, drawCurationGrid(groups, images, cur.info[0], n))
}

// curationGroups picks the rows of each grid row of CurationGrid.
func curationGroups(cur *curated, n int) []curationGroup {
	info, kept := cur.info[0], cur.kept[0]
	key := func(r int) int64 { // classes in order, unlabelled rows last
		if !cur.labelled {
			return 0
		}
		if !info.hasLabel[r] {
			return math.MaxInt64
		}
		return int64(info.label[r])
	}
	byKey := map[int64]*curationGroup{}
	var rejected []int
	for r := range kept {
		g := byKey[key(r)]
		if g == nil {
			g = &curationGroup{}
			byKey[key(r)] = g
		}
		if kept[r] && len(g.kept) < n {
			g.kept = append(g.kept, r)
		} else if !kept[r] {
			rejected = append(rejected, r)
		}
	}
	slices.SortStableFunc(rejected, func(a, b int) int {
		sa, sb := math.Inf(-1), math.Inf(-1)
		if info.hasScore[a] {
			sa = float64(info.score[a])
		}
		if info.hasScore[b] {
			sb = float64(info.score[b])
		}
		return cmp.Compare(sa, sb)
	})
	for _, r := range rejected {
		if g := byKey[key(r)]; len(g.rejected) < n {
			g.rejected = append(g.rejected, r)
		}
	}
	var groups []curationGroup
	for _, k := range mapKeysSorted(byKey, cmp.Compare[int64]) {
		groups = append(groups, *byKey[k])
	}
	return groups
}

// curationBar is the width in pixels of the red bar between kept and rejected images.
const curationBar = 3

// drawCurationGrid draws the groups, n kept cells | bar | n rejected cells per row, each image
// above its score.
func drawCurationGrid(groups []curationGroup, images map[int]image.Image, info rowInfo, n int) *image.RGBA {
	cw, ch := 1, 1
	for _, img := range images {
		cw, ch = max(cw, img.Bounds().Dx()), max(ch, img.Bounds().Dy())
	}
	cellW, cellH := cw+gridPad, ch+gridTextRows+gridPad
	barX := gridPad + n*cellW
	out := image.NewRGBA(image.Rect(0, 0, barX+curationBar+gridPad+n*cellW, gridPad+max(len(groups), 1)*cellH))
	gridBackground(out)
	draw.Draw(out, image.Rect(barX, 0, barX+curationBar, out.Rect.Max.Y), image.NewUniform(color.RGBA{200, 40, 40, 255}), image.Point{}, draw.Src)
	for gi, g := range groups {
		y0 := gridPad + gi*cellH
		for side, rows := range [][]int{g.kept, g.rejected} {
			x0 := gridPad + side*(n*cellW+curationBar+gridPad)
			for i, r := range rows {
				text := "-"
				if info.hasScore[r] {
					text = strconv.FormatFloat(float64(info.score[r]), 'g', 3, 32)
				}
				drawCell(out, x0+i*cellW, y0, cw, ch, images[r], text)
			}
		}
	}
	return out
}
