package data

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// layoutFixture writes three idPNG files with uneven row groups — a-0 (ids 0…22, groups of
// 5), a-1 (empty), a-2 (ids 100…116, groups of 4) — and b (ids 200…210, one group), and
// returns the comma-separated glob list naming them and every id in layout order.
func layoutFixture(t *testing.T, bad map[int]bool) (string, []int) {
	t.Helper()
	image := func(id int) []byte {
		if bad[id] {
			return []byte("\x89PNG\r\n\x1a\n not really")
		}
		return idPNG(t, id)
	}
	dir := fixtureDir(t, map[string]fixture{
		"a-0.parquet": {n: 23, first: 0, groupRows: 5, image: image},
		"a-1.parquet": {n: 0, groupRows: 5},
		"a-2.parquet": {n: 17, first: 100, groupRows: 4, image: image},
		"b.parquet":   {n: 11, first: 200, groupRows: 11, image: image},
	})
	var ids []int
	for _, r := range [][2]int{{0, 23}, {100, 17}, {200, 11}} {
		for id := r[0]; id < r[0]+r[1]; id++ {
			ids = append(ids, id)
		}
	}
	return filepath.Join(dir, "a-*.parquet") + ", " + filepath.Join(dir, "b.parquet"), ids
}

func TestStreamEpochsArePermutations(t *testing.T) {
	train, all := layoutFixture(t, nil)
	n := len(all)
	for _, b := range []int{1, 7, n, 64} {
		s := openStream(t, idConfig(train), b, 3)
		if st := s.Stats(); st.Files != 4 || st.Rows != int64(n) || st.Scanned != int64(n) || st.RowGroups != 5+5+1 {
			t.Fatalf("B=%d: stats %+v, want 4 files, 11 row groups, %d rows", b, st, n)
		}
		k := 3*n/b + 1
		ids := take(t, s, k).ids()
		var epochs [][]int
		for e := 0; (e+1)*n <= len(ids); e++ {
			order := ids[e*n : (e+1)*n]
			if !slices.Equal(slices.Sorted(slices.Values(order)), all) {
				t.Fatalf("B=%d: epoch %d order %v is not a permutation of the rows", b, e, order)
			}
			epochs = append(epochs, order)
		}
		if slices.Equal(epochs[0], epochs[1]) || slices.Equal(epochs[1], epochs[2]) {
			t.Errorf("B=%d: consecutive epochs have the same order", b)
		}
		consumed := int64(k * b)
		if p := s.Position(); p.Epoch != consumed/int64(n) || p.Index != consumed%int64(n) || p.Fingerprint == "" {
			t.Errorf("B=%d: after %d rows Position = %+v, want {%d %d} with a fingerprint", b, consumed, p, consumed/int64(n), consumed%int64(n))
		}
		if st := s.Stats(); st.Delivered != consumed || st.Skipped != 0 {
			t.Errorf("B=%d: stats %+v, want %d delivered, none skipped", b, st, consumed)
		}
		// The unit cache reads each row group once per epoch: the full epochs, the one in
		// progress, and those the pipeline has assembled ahead (up to Prefetch+2 batches, which
		// span several epochs when B is near the epoch size).
		full, units := consumed/int64(n), int64(len(s.cat.units))
		ahead := (int64((s.cfg.Prefetch+2)*b)+int64(n)-1)/int64(n) + 1
		if reads := s.cat.unitReads.Load(); reads < full*units || reads > (full+ahead)*units {
			t.Errorf("B=%d: %d row-group reads for %d full epochs of %d row groups", b, reads, full, units)
		}
	}
}

func TestStreamSeedsAndEpochsDiffer(t *testing.T) {
	train, all := layoutFixture(t, nil)
	n := len(all)
	epochIDs := func(seed uint64, buffer int) []int {
		cfg := idConfig(train)
		cfg.ShuffleBuffer = buffer
		return take(t, openStream(t, cfg, n, seed), 2).ids()
	}
	for _, buffer := range []int{0, 8, 1000} {
		a, again, other := epochIDs(1, buffer), epochIDs(1, buffer), epochIDs(2, buffer)
		if !slices.Equal(a, again) {
			t.Errorf("buffer %d: the same seed gave different streams", buffer)
		}
		if slices.Equal(a[:n], other[:n]) {
			t.Errorf("buffer %d: seeds 1 and 2 gave the same epoch-0 order", buffer)
		}
		if slices.Equal(a[:n], a[n:]) {
			t.Errorf("buffer %d: epochs 0 and 1 have the same order", buffer)
		}
		if slices.Equal(a[:n], all) {
			t.Errorf("buffer %d: epoch 0 is in file order", buffer)
		}
	}
}

// TestStreamExactResume: a run interrupted after k batches and resumed from its saved
// Position yields exactly the batches of the uninterrupted run, across epoch boundaries,
// with any worker count, with augmentation and with undecodable rows being skipped.
func TestStreamExactResume(t *testing.T) {
	const b, total = 7, 17 // 119 rows: crosses two epoch boundaries of 51 rows
	cases := []struct {
		name string
		bad  map[int]bool
		edit func(*Config)
	}{
		{"shuffle buffer 8", nil, func(c *Config) {}},
		{"no buffer with flip and crop in RGB", nil, func(c *Config) {
			c.ShuffleBuffer, c.HFlip, c.CropScale, c.Channels, c.ImageSize = 0, true, 0.4, 3, 6
		}},
		{"full shuffle with bad rows skipped", map[int]bool{3: true, 104: true, 210: true}, func(c *Config) { c.ShuffleBuffer = 1000 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			train, _ := layoutFixture(t, tc.bad)
			cfg := idConfig(train)
			tc.edit(&cfg)
			withWorkers := func(w int) Config { c := cfg; c.Workers = w; return c }
			ref := take(t, openStream(t, withWorkers(1), b, 11), total)
			for w := 2; w <= 3; w++ {
				got := take(t, openStream(t, withWorkers(w), b, 11), total)
				if err := sameBatches(got.batches, ref.batches); err != nil || !slices.Equal(got.ends, ref.ends) {
					t.Fatalf("%d workers differ from 1 worker: %v", w, err)
				}
			}
			for _, k := range []int{0, 1, 7, 8, 14, 16} {
				first := openStream(t, withWorkers(1+k%3), b, 11)
				take(t, first, k)
				saved := must(json.Marshal(first.Position()))
				first.Close()
				var p Position
				if err := json.Unmarshal(saved, &p); err != nil {
					t.Fatal(err)
				}
				resumed := openStream(t, withWorkers(3-k%3), b, 11)
				if err := resumed.SetPosition(p); err != nil {
					t.Fatalf("k=%d: SetPosition(%s): %v", k, saved, err)
				}
				got := take(t, resumed, total-k)
				if err := sameBatches(got.batches, ref.batches[k:]); err != nil || !slices.Equal(got.ends, ref.ends[k:]) {
					t.Fatalf("k=%d: resumed at %s: %v (ends %v, want %v)", k, saved, err, got.ends, ref.ends[k:])
				}
			}
			if tc.bad != nil {
				s := openStream(t, cfg, b, 11)
				take(t, s, total)
				p := s.Position()
				if st := s.Stats(); st.Skipped != p.Epoch*51+p.Index-b*total || len(st.BadRows) != 3 {
					t.Errorf("stats %+v at %+v: want every consumed bad row skipped and 3 distinct bad rows", st, p)
				}
			}
		})
	}
}

// TestStreamSetPositionMidRun moves a running stream (with batches prefetched) back and
// forth and checks it yields what a fresh stream at that position yields.
func TestStreamSetPositionMidRun(t *testing.T) {
	train, _ := layoutFixture(t, nil)
	cfg := idConfig(train)
	ref := take(t, openStream(t, cfg, 5, 4), 30)
	s := openStream(t, cfg, 5, 4)
	take(t, s, 3)
	for _, k := range []int{20, 2, 11} {
		if err := s.SetPosition(ref.ends[k-1]); err != nil {
			t.Fatal(err)
		}
		if got := take(t, s, 4); sameBatches(got.batches, ref.batches[k:k+4]) != nil {
			t.Errorf("after SetPosition(%+v) the batches differ from the reference", ref.ends[k-1])
		}
	}
}

func TestStreamPositionErrors(t *testing.T) {
	train, all := layoutFixture(t, nil)
	cfg := idConfig(train)
	s := openStream(t, cfg, 4, 1)
	fp := s.Position().Fingerprint
	for _, p := range []Position{{Index: int64(len(all))}, {Index: -1}, {Epoch: -1}} {
		p.Fingerprint = fp
		if err := s.SetPosition(p); err == nil {
			t.Errorf("SetPosition(%+v) accepted", p)
		}
	}
	if err := s.SetPosition(Position{Epoch: 2, Index: 5, Fingerprint: "0123456789abcdef"}); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("foreign fingerprint: err = %v", err)
	}
	if err := s.SetPosition(Position{Epoch: 2, Index: 5}); err != nil {
		t.Errorf("legacy position without fingerprint: %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"seed":    nil,
		"buffer":  func(c *Config) { c.ShuffleBuffer = 9 },
		"filters": func(c *Config) { c.Labels = []int{0, 1, 2} },
	} {
		c, seed := cfg, uint64(1)
		if edit == nil {
			seed = 2
		} else {
			edit(&c)
		}
		if other := openStream(t, c, 4, seed).Position().Fingerprint; other == fp {
			t.Errorf("changing the %s kept the fingerprint %s", name, fp)
		}
	}
	c := cfg
	c.Workers, c.Prefetch, c.HFlip = 3, 1, true // none of these changes which rows come
	if other := openStream(t, c, 9, 1).Position().Fingerprint; other != fp {
		t.Errorf("workers/prefetch/hflip/batch size changed the fingerprint")
	}
	if err := s.Next(&Batch{B: 4}); err == nil || !strings.Contains(err.Error(), "NewBatch") {
		t.Errorf("Next with a wrong batch: err = %v", err)
	}
	if got, want := must(json.Marshal(Position{Epoch: 3, Index: 5, Fingerprint: "ab"})), `{"epoch":3,"index":5,"fingerprint":"ab"}`; string(got) != want {
		t.Errorf("Position JSON = %s, want %s", got, want)
	}
}

// TestEpochOrderGolden pins the order, which checkpoints depend on across Go releases.
func TestEpochOrderGolden(t *testing.T) {
	c := &catalog{}
	for u, n := range []int32{3, 2, 4} {
		c.units = append(c.units, unit{group: int32(u), first: int32(len(c.rowUnit)), n: n})
		for range n {
			c.rowUnit = append(c.rowUnit, int32(u))
		}
	}
	cases := []struct {
		seed   uint64
		epoch  int64
		buffer int
		want   []int32
	}{
		{0, 0, 1, []int32{5, 6, 7, 8, 3, 4, 0, 1, 2}},
		{0, 0, 3, []int32{5, 7, 8, 3, 0, 6, 4, 1, 2}},
		{7, 1, 3, []int32{6, 5, 7, 8, 4, 1, 0, 3, 2}},
		{7, 2, 100, []int32{2, 0, 4, 5, 6, 1, 7, 8, 3}},
	}
	for _, tc := range cases {
		if got := c.epochOrder(tc.seed, tc.epoch, tc.buffer); !slices.Equal(got, tc.want) {
			t.Errorf("epochOrder(seed %d, epoch %d, buffer %d) = %#v, want %#v", tc.seed, tc.epoch, tc.buffer, got, tc.want)
		}
	}
}

// TestStreamMNISTThroughput measures Next on the full MNIST train split (decoded, padded to
// 32×32, batched) with 2 workers; it asserts only correctness, not speed.
func TestStreamMNISTThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("full MNIST import and streaming skipped in -short mode")
	}
	dir, err := FindGoMNIST()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "mnist-train.parquet")
	if _, err := ImportMNIST(dir, "train", out); err != nil {
		t.Fatal(err)
	}
	for _, aug := range []struct {
		name  string
		hflip bool
		crop  float64
	}{{"no augmentation", false, 1}, {"hflip + crop 0.8", true, 0.8}} {
		cfg := DefaultConfig()
		cfg.Train, cfg.Workers, cfg.HFlip, cfg.CropScale = out, 2, aug.hflip, aug.crop
		const batch = 128
		start := time.Now()
		s := openStream(t, cfg, batch, 0)
		opened := time.Since(start)
		b := NewBatch(s.Info(), cfg, batch)
		counts := make([]int, 10)
		start = time.Now()
		for range 60000/batch + 1 {
			if err := s.Next(b); err != nil {
				t.Fatal(err)
			}
			for _, l := range b.Labels {
				counts[l]++
			}
		}
		elapsed := time.Since(start)
		st := s.Stats()
		t.Logf("%s: Open %v (%d files, %d row groups, %d rows); %d images in %v: %.0f images/s (2 workers, B=%d, GOMAXPROCS %d)",
			aug.name, opened.Round(time.Millisecond), st.Files, st.RowGroups, st.Rows, st.Delivered, elapsed.Round(time.Millisecond),
			float64(st.Delivered)/elapsed.Seconds(), batch, runtime.GOMAXPROCS(0))
		if st.Rows != 60000 || st.Skipped != 0 || s.Position().Epoch != 1 {
			t.Errorf("stats %+v at %+v, want 60000 rows, none skipped, epoch 1", st, s.Position())
		}
		for l, c := range counts { // MNIST train has 5421 to 6742 examples per class
			if c < 5421 || c > 6742+60032-60000 {
				t.Errorf("class %d seen %d times in one epoch", l, c)
			}
		}
	}
}
