package trainer

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
)

func mustTrain(t *testing.T, job Job, opt Options) *Result {
	t.Helper()
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	res, err := Train(context.Background(), testBackend(t), job, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func lossSeq(t *testing.T, run checkpoints.RunDir) []float64 {
	t.Helper()
	recs, err := ReadMetrics(run.MetricsPath())
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, r := range recs {
		out = append(out, r.Loss)
	}
	return out
}

// TestResumeIsExact: 20 steps straight vs 10 steps, stop, resume for 10: identical loss sequence,
// weights, EMA, optimizer moments and host state (RNG, data position).
func TestResumeIsExact(t *testing.T) {
	straight := tinyJob(t, t.TempDir(), 20)
	mustTrain(t, straight, Options{})

	split := tinyJob(t, t.TempDir(), 20)
	if res := mustTrain(t, split, Options{StopAt: 10}); res.Steps != 10 {
		t.Fatalf("first half stopped at %d steps, want 10", res.Steps)
	}
	mustTrain(t, split, Options{Resume: true})

	la, lb := lossSeq(t, straight.RunDir), lossSeq(t, split.RunDir)
	if len(la) != 20 || !slices.Equal(la, lb) {
		t.Fatalf("loss sequences differ:\nstraight %v\nresumed  %v", la, lb)
	}
	stepA, ta, ma, err := checkpoints.LoadLatest(straight.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	stepB, tb, mb, err := checkpoints.LoadLatest(split.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	if stepA != 20 || stepB != 20 {
		t.Fatalf("final checkpoints at steps %d and %d, want 20", stepA, stepB)
	}
	if len(ta) != len(tb) {
		t.Fatalf("checkpoints hold %d and %d tensors", len(ta), len(tb))
	}
	kinds := map[string]int{}
	for name, a := range ta {
		b, ok := tb[name]
		if !ok {
			t.Fatalf("tensor %s missing after resume", name)
		}
		if !slices.Equal(tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](b)) {
			t.Errorf("tensor %s differs after resume", name)
		}
		kinds[name[:3]]++
	}
	if kinds["mod"] == 0 || kinds["ema"] != kinds["mod"] || kinds["opt"] != 2*kinds["mod"] {
		t.Errorf("checkpoint lacks state: %v tensors by prefix (want model, ema = model, opt = 2×model)", kinds)
	}
	for _, k := range []string{MetaRNG, MetaData} {
		if ma[k] != mb[k] {
			t.Errorf("metadata %s differs: %q vs %q", k, ma[k], mb[k])
		}
	}
}

// TestLossFallsOnMNIST: a small model on real MNIST digits learns within a few hundred steps.
func TestLossFallsOnMNIST(t *testing.T) {
	job := tinyJob(t, t.TempDir(), 300)
	job.Trainer.BatchSize = 32
	mustTrain(t, job, Options{})
	l := lossSeq(t, job.RunDir)
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	first, last := mean(l[:20]), mean(l[len(l)-50:])
	t.Logf("mean loss: first 20 steps %.4f, last 50 steps %.4f", first, last)
	if !(last < 0.6*first) {
		t.Errorf("loss did not fall clearly: first %.4f, last %.4f (want last < 0.6·first)", first, last)
	}
	for i, x := range l {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("non-finite loss at step %d", i+1)
		}
	}
}

// TestFreshRunRefusesExistingCheckpoints: starting a new run over an old one is an error, not a silent overwrite.
func TestFreshRunRefusesExistingCheckpoints(t *testing.T) {
	job := tinyJob(t, t.TempDir(), 2)
	mustTrain(t, job, Options{})
	if _, err := Train(context.Background(), testBackend(t), job, Options{Out: io.Discard}); err == nil {
		t.Fatal("second fresh run in the same directory succeeded; want an error pointing to -resume")
	}
}

// TestInterruptWritesCheckpoint: a cancelled context stops the run with ErrInterrupted, after
// writing a checkpoint of the last completed step, from which the run resumes.
func TestInterruptWritesCheckpoint(t *testing.T) {
	job := tinyJob(t, t.TempDir(), 50)
	mustTrain(t, job, Options{StopAt: 3})
	if err := os.Remove(job.RunDir.CheckpointPath(3)); err != nil {
		t.Fatal(err)
	}
	job.Trainer.CheckpointEvery = 2 // so that a checkpoint at step 2 exists to resume from
	_ = os.RemoveAll(job.RunDir.CheckpointDir())
	_ = os.RemoveAll(job.RunDir.MetricsPath())
	mustTrain(t, job, Options{StopAt: 2})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Train(ctx, testBackend(t), job, Options{Resume: true, Out: io.Discard})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("got %v, want ErrInterrupted", err)
	}
	steps, err := checkpoints.List(job.RunDir)
	if err != nil || !slices.Equal(steps, []int64{2}) {
		t.Fatalf("checkpoints after interrupt: %v, %v (want [2])", steps, err)
	}
	mustTrain(t, job, Options{Resume: true, StopAt: 4})
	if l := lossSeq(t, job.RunDir); len(l) != 4 {
		t.Fatalf("metrics after resume hold %d steps, want 4", len(l))
	}
}

// TestNonFiniteStops: an exploding run stops with a clear error at the first non-finite step,
// writes no checkpoint after it, and leaves the last good checkpoint loadable.
func TestNonFiniteStops(t *testing.T) {
	job := tinyJob(t, t.TempDir(), 200)
	job.Trainer.LR = 1e30
	job.Trainer.WarmupSteps = 0
	job.Trainer.GradClip = 0
	job.Trainer.CheckpointEvery = 1
	job.Trainer.KeepCheckpoints = 0
	_, err := Train(context.Background(), testBackend(t), job, Options{Out: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "non-finite") || !strings.Contains(err.Error(), "last good checkpoint") {
		t.Fatalf("got %v, want a non-finite error naming the last good checkpoint", err)
	}
	steps, _ := checkpoints.List(job.RunDir)
	recs, _ := ReadMetrics(job.RunDir.MetricsPath())
	if len(steps) == 0 || int(steps[len(steps)-1]) != len(recs) {
		t.Fatalf("checkpoints %v after %d finite steps", steps, len(recs))
	}
	_, ts, _, err := checkpoints.LoadLatest(job.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range ts {
		for _, x := range tensors.MustCopyFlatData[float32](v) {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("last checkpoint holds a non-finite value in %s", name)
			}
		}
	}
}
