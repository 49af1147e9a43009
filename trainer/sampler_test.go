package trainer

import (
	"context"
	"io"
	"slices"
	"testing"
)

// TestSamplerSeesTrainedWeights: a sampler compiled before more training must sample with the
// new weights (on the go backend a non-training graph would have baked the old ones in as
// constants; gomlx-notes trap 2).
func TestSamplerSeesTrainedWeights(t *testing.T) {
	backend := testBackend(t)
	job := tinyJob(t, t.TempDir(), 30)
	r, err := newRun(backend, job, Options{Out: io.Discard, StopAt: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if _, err := r.loop(context.Background()); err != nil {
		t.Fatal(err)
	}
	early, err := GridSampler(backend, r.store, job)
	if err != nil {
		t.Fatal(err)
	}
	seeds, classes := []uint64{1, 2, 3}, []int32{0, 1, 2}
	side, ch := r.info.H, r.info.C
	before, err := early.Sample(seeds, classes, side, side, ch)
	if err != nil {
		t.Fatal(err)
	}
	r.opt.StopAt = 30
	if _, err := r.loop(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, err := early.Sample(seeds, classes, side, side, ch)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := GridSampler(backend, r.store, job)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fresh.Sample(seeds, classes, side, side, ch)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(before, after) {
		t.Fatal("the early sampler produced the same images after 28 more training steps: stale weights")
	}
	if !slices.Equal(after, want) {
		t.Fatal("the early sampler disagrees with a freshly built one on the same weights")
	}
}
