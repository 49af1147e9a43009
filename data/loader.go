package data

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
)

// Position is the exact position of a Loader in its stream, saved in checkpoints.
// Index is the number of examples already consumed in Epoch, in [0, N).
type Position struct {
	Epoch int64 `json:"epoch"`
	Index int64 `json:"index"`
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
