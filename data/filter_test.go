package data

import (
	"cmp"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// scoredFixture writes two files of ids 0…29 and 100…119 with label id%3, score
// (id*7 % 10)/10 (so scores tie) and captions naming colours and animals, and returns the
// glob naming both and each id's (label, score, caption) in layout order.
func scoredFixture(t *testing.T) (string, []scoredRow) {
	t.Helper()
	score := func(id int) float32 { return float32(id*7%10) / 10 }
	animals := []string{"Red Fox", "blue whale", "a red panda", "green frog", "the FOX and the hound"}
	caption := func(id int) string { return animals[id%len(animals)] }
	dir := fixtureDir(t, map[string]fixture{
		"s-0.parquet": {n: 30, first: 0, groupRows: 8, score: score, caption: caption},
		"s-1.parquet": {n: 20, first: 100, groupRows: 6, score: score, caption: caption},
	})
	var rows []scoredRow
	for _, r := range [][2]int{{0, 30}, {100, 20}} {
		for id := r[0]; id < r[0]+r[1]; id++ {
			rows = append(rows, scoredRow{id: id, label: id % 3, score: score(id), caption: caption(id)})
		}
	}
	return filepath.Join(dir, "s-*.parquet"), rows
}

type scoredRow struct {
	id, label int
	score     float32
	caption   string
}

// epochIDs returns the sorted ids of one epoch of cfg.
func epochIDs(t *testing.T, cfg Config) []int {
	t.Helper()
	s := openStream(t, cfg, 1, 5)
	ids := take(t, s, int(s.Stats().Rows)).ids()
	slices.Sort(ids)
	return ids
}

// topKByScore is the reference top-K: stable sort of the layout order by score descending.
func topKByScore(rows []scoredRow, k int, perClass bool) []int {
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b scoredRow) int { return cmp.Compare(b.score, a.score) })
	count := map[int]int{}
	var ids []int
	for _, r := range sorted {
		key := 0
		if perClass {
			key = r.label
		}
		if count[key] < k {
			count[key]++
			ids = append(ids, r.id)
		}
	}
	slices.Sort(ids)
	return ids
}

func TestStreamFilters(t *testing.T) {
	train, rows := scoredFixture(t)
	where := func(keep func(r scoredRow) bool) []int {
		var ids []int
		for _, r := range rows {
			if keep(r) {
				ids = append(ids, r.id)
			}
		}
		return ids
	}
	cases := []struct {
		name string
		edit func(*Config)
		want []int
	}{
		{"none", func(c *Config) {}, where(func(r scoredRow) bool { return true })},
		{"labels", func(c *Config) { c.Labels = []int{0, 2} }, where(func(r scoredRow) bool { return r.label != 1 })},
		{"min score", func(c *Config) { c.UseMinScore, c.MinScore = true, 0.6 }, where(func(r scoredRow) bool { return r.score >= 0.6 })},
		{"min score off", func(c *Config) { c.MinScore = 0.6 }, where(func(r scoredRow) bool { return true })},
		{"caption", func(c *Config) { c.CaptionContains = "fox" }, where(func(r scoredRow) bool { return strings.Contains(strings.ToLower(r.caption), "fox") })},
		{"top k", func(c *Config) { c.TopK = 7 }, topKByScore(rows, 7, false)},
		{"top k per class", func(c *Config) { c.TopK, c.TopKPerClass = 4, true }, topKByScore(rows, 4, true)},
		{"combined", func(c *Config) {
			c.Labels, c.CaptionContains, c.UseMinScore, c.MinScore, c.TopK = []int{1}, "RED", true, 0.2, 3
		}, topKByScore(slices.DeleteFunc(slices.Clone(rows), func(r scoredRow) bool {
			return r.label != 1 || !strings.Contains(strings.ToLower(r.caption), "red") || r.score < 0.2
		}), 3, false)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := idConfig(train)
			tc.edit(&cfg)
			if len(tc.want) == 0 || (tc.name != "none" && tc.name != "min score off" && len(tc.want) == len(rows)) {
				t.Fatalf("bad test case: filter keeps %d of %d rows", len(tc.want), len(rows))
			}
			if got := epochIDs(t, cfg); !slices.Equal(got, tc.want) {
				t.Errorf("epoch holds %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStreamLabels(t *testing.T) {
	train, _ := scoredFixture(t)
	s := openStream(t, idConfig(train), 16, 2)
	for _, b := range take(t, s, 5).batches {
		for i := range b.B {
			if id := exampleID(b, i); b.Labels[i] != int32(id%3) {
				t.Fatalf("row %d: label %d, want %d", id, b.Labels[i], id%3)
			}
		}
	}
}

// TestTopKTies: equal scores keep the earlier row; per class keeps K of each label.
func TestTopKTies(t *testing.T) {
	cands := []candidate{{row: 0, score: 1, label: 0}, {row: 1, score: 2, label: 1}, {row: 2, score: 1, label: 1},
		{row: 3, score: 2, label: 0}, {row: 4, score: 1, label: 0}}
	if got := topK(cands, 3, false); !slices.Equal(got, []int{0, 1, 3}) {
		t.Errorf("topK(3) = %v, want [0 1 3]", got)
	}
	if got := topK(cands, 1, true); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("topK(1 per class) = %v, want [1 3]", got)
	}
	if got := topK(cands, 10, false); len(got) != 5 {
		t.Errorf("topK(10) = %v, want all 5", got)
	}
}
