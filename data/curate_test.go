package data

import (
	"bytes"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// curatedIDs returns the ids (scoredFixture numbering, layout order) of the rows cur keeps.
func curatedIDs(cur *curated, rows []scoredRow) []int {
	var ids []int
	k := 0
	for _, kept := range cur.kept {
		for _, keep := range kept {
			if keep {
				ids = append(ids, rows[k].id)
			}
			k++
		}
	}
	return ids
}

// TestCurationPerClassBalanced: per-class top-K keeps exactly K rows of each class (each has
// at least K), the same rows as the reference and as the loader's epochs under any seed and
// shuffle buffer; among tied scores the earlier rows are kept.
func TestCurationPerClassBalanced(t *testing.T) {
	train, rows := scoredFixture(t)
	paths, err := expandGlobs(train)
	if err != nil {
		t.Fatal(err)
	}
	const k = 4
	c := Curation{TopK: k, PerClass: true}
	cur, err := curate(paths, c)
	if err != nil {
		t.Fatal(err)
	}
	ids := curatedIDs(cur, rows)
	perClass := map[int]int{}
	for _, id := range ids {
		perClass[id%3]++
	}
	if len(perClass) != 3 || perClass[0] != k || perClass[1] != k || perClass[2] != k {
		t.Errorf("kept per class %v, want %d of each of 3 classes", perClass, k)
	}
	if want := topKByScore(rows, k, true); !slices.Equal(ids, want) {
		t.Errorf("kept %v, want %v", ids, want)
	}
	// Ties: a rejected row scoring as much as the lowest kept row of its class comes after
	// every kept row of that score.
	keptSet := map[int]bool{}
	for _, id := range ids {
		keptSet[id] = true
	}
	for i, r := range rows {
		if keptSet[r.id] {
			continue
		}
		for _, later := range rows[i+1:] {
			if later.label == r.label && later.score == r.score && keptSet[later.id] {
				t.Errorf("row %d kept over the earlier row %d of equal score %v (class %d)", later.id, r.id, r.score, r.label)
			}
		}
	}
	again, err := curate(paths, c)
	if err != nil || !slices.Equal(curatedIDs(again, rows), ids) {
		t.Errorf("second run: %v, %v", err, curatedIDs(again, rows))
	}
	for _, run := range []struct {
		seed   uint64
		buffer int
	}{{1, 0}, {2, 7}, {99, 1000}} {
		cfg := idConfig(train)
		cfg.TopK, cfg.TopKPerClass, cfg.ShuffleBuffer = k, true, run.buffer
		s := openStream(t, cfg, 1, run.seed)
		got := take(t, s, int(s.Stats().Rows)).ids()
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("seed %d, shuffle buffer %d: epoch holds %v, the curation keeps %v", run.seed, run.buffer, got, ids)
		}
	}
}

func TestInspectCuration(t *testing.T) {
	paths := inspectFixture(t) // labels 0,0,0,1,1,2,2,2,2,none; scores 0…9
	for _, tc := range []struct {
		c    Curation
		want []string
	}{
		{Curation{TopK: 1, PerClass: true}, []string{
			"curation (data.top_k 1 (per class: true)): keeps 3 of 10 rows (30.0%)",
			"  0 zero                            1 of        3  33.3%",
			"  2 two                             1 of        4  25.0%",
			"  (no label)                        0 of        1   0.0%",
		}},
		{Curation{MinScore: 5, UseMinScore: true}, []string{"curation (data.min_score 5): keeps 5 of 10 rows (50.0%)"}},
		{Curation{TopK: 4, MinScore: 3, UseMinScore: true}, []string{"keeps 4 of 10 rows (40.0%)", "  2 two                             3 of        4  75.0%"}},
	} {
		var out bytes.Buffer
		if err := InspectCuration(&out, tc.c, paths...); err != nil {
			t.Fatal(err)
		}
		for _, want := range tc.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%+v: output lacks %q:\n%s", tc.c, want, out.String())
			}
		}
	}
	if err := InspectCuration(&bytes.Buffer{}, Curation{TopK: -1}, paths...); err == nil || !strings.Contains(err.Error(), "data.top_k") {
		t.Errorf("top_k -1: err = %v", err)
	}
	noScore := scoreFixture(t)
	if err := InspectCuration(&bytes.Buffer{}, Curation{TopK: 2}, noScore); err == nil || !strings.Contains(err.Error(), noScore) || !strings.Contains(err.Error(), "column score") {
		t.Errorf("file without scores: err = %v", err)
	}
}

// TestCurationGrid: one row per class, kept images left of the red bar, the lowest-scoring
// rejected ones right of it.
func TestCurationGrid(t *testing.T) {
	paths := inspectFixture(t) // shard 0: labels 0,0,0,1,1,2; scores 0…5; row i is 3+i%2 wide, 3 high, value 25·i
	out := filepath.Join(t.TempDir(), "curated.png")
	if err := CurationGrid(paths[0], Curation{TopK: 1, PerClass: true}, 2, out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Cells 4×3 + 7 text rows, 2 px padding: width 2 + 2·6 (kept) + 3 (bar) + 2 + 2·6, height 2 + 3·12.
	if b := img.Bounds(); b.Dx() != 31 || b.Dy() != 38 {
		t.Fatalf("grid %v, want 31×38", b)
	}
	gray := func(x, y int) uint8 { return color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y }
	for _, p := range []struct {
		x, y int
		want uint8
		what string
	}{
		{2, 2, 50, "class 0 kept: row 2"},
		{19, 2, 0, "class 0 lowest rejected: row 0"},
		{25, 2, 25, "class 0 next rejected: row 1"},
		{2, 14, 100, "class 1 kept: row 4"},
		{19, 14, 75, "class 1 rejected: row 3"},
		{2, 26, 125, "class 2 kept: row 5"},
		{19, 26, 32, "class 2 has nothing rejected (background)"},
	} {
		if got := gray(p.x, p.y); got != p.want {
			t.Errorf("%s: pixel (%d, %d) = %d, want %d", p.what, p.x, p.y, got, p.want)
		}
	}
	if r, g, _, _ := img.At(14, 20).RGBA(); r>>8 != 200 || g>>8 != 40 {
		t.Errorf("bar pixel (14, 20) = %v, want red", img.At(14, 20))
	}
	if err := CurationGrid(paths[0], Curation{TopK: 1}, 0, out); err == nil {
		t.Error("n = 0: no error")
	}
}

// TestScoreThenCurate: a file scored by ScoreFile opens in the loader, whose top-K picks the
// sharpest rows.
func TestScoreThenCurate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "scored.parquet")
	if _, err := ScoreFile(scoreFixture(t), out, SharpnessScorer, nil); err != nil {
		t.Fatal(err)
	}
	cur, err := curate([]string{out}, Curation{TopK: 7})
	if err != nil {
		t.Fatal(err)
	}
	for r, keep := range cur.kept[0] { // the 7 checkerboards (rows 1, 4, …, 19) score 9, the most
		if keep != (r%3 == 1) {
			t.Errorf("row %d: kept %v", r, keep)
		}
	}
}
