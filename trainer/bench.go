package trainer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// BenchResult holds the timings of Bench.
type BenchResult struct {
	Batch                    int
	TrainStepMS, ForwardMS   float64 // medians
	ImgPerS                  float64 // training images per second at the median step time
	ForwardGFLOP, TrainGFLOP float64 // per batch; train = 3 × forward (forward + 2× for backward)
	GFLOPS                   float64 // achieved training GFLOP/s
	PeakRSSMB                float64
	Params                   int
}

// BenchOptions are the shapes and repetitions of Bench.
type BenchOptions struct {
	Batch, Side, Channels int
	Warmup, Steps         int  // untimed and timed repetitions (medians of Steps)
	ForwardOnly           bool // skip the training-step timing
	// OnGraph, when set, is called with the compiled training-step ("train") and forward
	// ("forward") graphs after their timings (e.g. to save them for an outside profiler).
	OnGraph func(name string, g *Graph) error
}

// Bench times the training step (diffusion loss + AdamW + EMA) and the forward pass of a model on
// random data, after o.Warmup untimed repetitions; medians of o.Steps.
func Bench(backend compute.Backend, mc models.Config, dc models.DiffusionConfig, tc Config, o BenchOptions) (*BenchResult, error) {
	store := model.NewStore()
	den, unet, err := models.NewDenoiser(mc, dc, 0)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := o.Batch * o.Side * o.Side * o.Channels
	normals := func(k int) []float32 {
		out := make([]float32, k)
		for i := range out {
			out[i] = float32(rng.NormFloat64())
		}
		return out
	}
	cw := mc.CondWidth()
	b := &Batch{B: o.Batch, H: o.Side, W: o.Side, C: o.Channels, X0: normals(n), Cond: make([]int32, o.Batch*cw), T: make([]float32, o.Batch), CondWidth: cw}
	for j := range b.T {
		b.T[j] = float32(rng.Float64())
		b.Cond[j*cw] = int32(rng.IntN(mc.NumClasses + 1))
	}
	if mc.Text.On() {
		BenchCaptions(b.Cond, mc, rng)
	}
	r := &BenchResult{Batch: o.Batch}
	if !o.ForwardOnly {
		step, err := NewStep(backend, store, den, tc)
		if err != nil {
			return nil, err
		}
		if r.TrainStepMS, err = timeMedian(o.Warmup, o.Steps, func(i int) error {
			b.Eps = normals(n)
			_, err := step.Run(b, i)
			return err
		}); err != nil {
			return nil, err
		}
		if o.OnGraph != nil {
			if err := o.OnGraph("train", step.Graph()); err != nil {
				return nil, err
			}
		}
	}
	fwd, err := model.NewExec(backend, store, func(root *model.Scope, x, t, cond *Node) *Node {
		root.SetTraining(x.Graph(), true)
		return den.Net(root.In(ModelScope), x, t, cond)
	})
	if err != nil {
		return nil, err
	}
	xt := tensors.FromFlatDataAndDimensions(normals(n), o.Batch, o.Side, o.Side, o.Channels)
	tt := tensors.FromFlatDataAndDimensions(b.T, o.Batch)
	ct := b.CondTensor()
	var fwdGraph *Graph
	if r.ForwardMS, err = timeMedian(o.Warmup, o.Steps, func(int) error {
		outs, g, err := fwd.CallWithGraph(xt, tt, ct)
		if err == nil {
			fwdGraph = g
			err = outs[0].FinalizeAll()
		}
		return err
	}); err != nil {
		return nil, err
	}
	if o.OnGraph != nil {
		if err := o.OnGraph("forward", fwdGraph); err != nil {
			return nil, err
		}
	}
	r.PeakRSSMB, r.ForwardGFLOP, r.Params = peakRSSMB(), float64(unet.Params().FLOPs)/1e9, paramCount(store)
	r.TrainGFLOP = 3 * r.ForwardGFLOP
	if r.TrainStepMS > 0 {
		r.ImgPerS = float64(o.Batch) / (r.TrainStepMS / 1000)
		r.GFLOPS = r.TrainGFLOP / (r.TrainStepMS / 1000)
	}
	return r, nil
}

// timeMedian runs fn warmup+steps times and returns the median wall time of the last `steps` in ms.
func timeMedian(warmup, steps int, fn func(i int) error) (float64, error) {
	var times []float64
	for i := range warmup + steps {
		t0 := time.Now()
		if err := fn(i); err != nil {
			return 0, err
		}
		if i >= warmup {
			times = append(times, time.Since(t0).Seconds()*1000)
		}
	}
	return median(times), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// paramCount is the number of trainable weights (under /model).
func paramCount(store *model.Store) int {
	n := 0
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+ModelScope+"/") {
			n += v.Shape().Size()
		}
	}
	return n
}

// peakRSSMB reads the process's peak resident set size (VmHWM) from /proc/self/status (Linux).
func peakRSSMB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// String is the machine-readable line of `make bench`.
func (r *BenchResult) String() string {
	return fmt.Sprintf("batch=%d train_step_ms=%.1f forward_ms=%.1f img_per_s=%.1f gflops=%.1f peak_rss_mb=%.0f",
		r.Batch, r.TrainStepMS, r.ForwardMS, r.ImgPerS, r.GFLOPS, r.PeakRSSMB)
}

// BenchCaptions fills the caption part of condition rows cond ([N, CondWidth] flattened) as
// torch_refdit.py draws them: random token ids in [2, vocab) with a random length 1…L, 10% of
// the rows the empty caption; under model.text.source column, random embeddings.
func BenchCaptions(cond []int32, mc models.Config, rng *rand.Rand) {
	cw := mc.CondWidth()
	for j := range len(cond) / cw {
		row := cond[j*cw+1 : (j+1)*cw]
		if mc.Text.Column() {
			for i := range row {
				row[i] = int32(rng.NormFloat64() * models.EmbeddingScale)
			}
			continue
		}
		n := 1 + rng.IntN(len(row))
		if rng.Float64() < 0.1 {
			n = 0
		}
		for i := range n {
			row[i] = int32(2 + rng.IntN(mc.Text.VocabSize()-2))
		}
	}
}
