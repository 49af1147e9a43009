package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"
)

// Position is the exact position of a Stream (or Loader) in its row stream, saved in
// checkpoints as JSON {"epoch":E,"index":I,"fingerprint":"…"}. Index is the number of
// order positions (rows, counting skipped undecodable ones) already consumed in Epoch, in
// [0, N). Fingerprint identifies the dataset layout, filters, shuffle buffer and seed that
// define the order (see Stream.SetPosition); Loader positions leave it empty.
type Position struct {
	Epoch       int64  `json:"epoch"`
	Index       int64  `json:"index"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Random streams: every draw of the reader comes from a PCG seeded with (seed, stream), the
// stream a pure function of what is drawn for, so no result depends on timing or workers.
const (
	streamUnits   = 1 // per-epoch permutation of (file, row group) units
	streamBuffer  = 2 // per-epoch shuffle buffer
	streamAugment = 3 // per-row augmentation
)

// streamKey mixes (kind, epoch, index) into one PCG stream selector (SplitMix64 finalizer).
func streamKey(kind uint64, epoch, index int64) uint64 {
	z := kind*0x9e3779b97f4a7c15 ^ uint64(epoch)*0xbf58476d1ce4e5b9 ^ uint64(index)*0x94d049bb133111eb
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// epochOrder returns the kept-row order of epoch: the (file, row group) units are permuted
// (Fisher–Yates on PCG(seed, streamUnits)), their kept rows concatenated in file order, and
// that stream run through a shuffle buffer of bufSize rows (PCG(seed, streamBuffer)): once
// full, each incoming row replaces a uniformly chosen buffered row, which is emitted; at the
// end the buffer drains in random order. A pure function of (seed, epoch, layout, bufSize):
// no row is read to compute it. Result: a permutation of [0, N), int32 [N].
func (c *catalog) epochOrder(seed uint64, epoch int64, bufSize int) []int32 {
	perm := make([]int32, len(c.units))
	src := rand.NewPCG(seed, streamKey(streamUnits, epoch, 0))
	for i := range perm {
		perm[i] = int32(i)
	}
	for i := len(perm) - 1; i > 0; i-- {
		j := boundedUint64(src, uint64(i)+1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	order := make([]int32, 0, c.n())
	bufSize = max(bufSize, 1)
	buf := make([]int32, 0, min(bufSize, c.n()))
	rng := rand.NewPCG(seed, streamKey(streamBuffer, epoch, 0))
	for _, u := range perm {
		first, n := c.units[u].first, c.units[u].n
		for k := first; k < first+n; k++ {
			if len(buf) < bufSize {
				buf = append(buf, k)
				continue
			}
			j := boundedUint64(rng, uint64(bufSize))
			order = append(order, buf[j])
			buf[j] = k
		}
	}
	for len(buf) > 0 {
		j := boundedUint64(rng, uint64(len(buf)))
		order = append(order, buf[j])
		buf[j] = buf[len(buf)-1]
		buf = buf[:len(buf)-1]
	}
	return order
}

// lastUse returns, for each unit, the last index of order holding one of its rows.
func (c *catalog) lastUse(order []int32) []int {
	last := make([]int, len(c.units))
	for i, k := range order {
		last[c.rowUnit[k]] = i
	}
	return last
}

// fingerprint identifies everything the order depends on besides the epoch: the files (base
// names, so a moved data directory still resumes), their row-group sizes, the filters, the
// kept rows (which rows of which row group), the shuffle buffer and the seed.
func (c *catalog) fingerprint(cfg Config, seed uint64) string {
	h := sha256.New()
	fmt.Fprintf(h, "fewstep order v1\nseed %d\nshuffle_buffer %d\n", seed, max(cfg.ShuffleBuffer, 1))
	minScore := "off"
	if cfg.UseMinScore {
		minScore = fmt.Sprint(cfg.MinScore)
	}
	fmt.Fprintf(h, "filters %v|%q|%s|%d|%v\n", cfg.Labels, cfg.CaptionContains, minScore, cfg.TopK, cfg.TopKPerClass)
	for _, s := range c.sources {
		fmt.Fprintf(h, "file %s %v\n", filepath.Base(s.path), s.groupRows)
	}
	fmt.Fprintf(h, "kept %d\n", c.n())
	for _, u := range c.units {
		fmt.Fprintf(h, "%d %d %d\n", u.src, u.group, u.n)
	}
	binary.Write(h, binary.LittleEndian, c.rowInGroup)
	return hex.EncodeToString(h.Sum(nil))[:16]
}
