package distill

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// newTestLCM builds an LCM method of the fixture teacher on a fresh store.
func newTestLCM(t *testing.T, lc LCMConfig, job trainer.Job) (*LCM, *model.Store) {
	t.Helper()
	cfg, _ := testLADD()
	cfg.Method = "lcm"
	store := model.NewStore()
	m, err := NewLCM(cfg, lc, fixture.teacher)(backendT(t), store, job, false)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*LCM), store
}

// TestLCMBoundary: c_skip(0) = 1 and c_out(0) = 0, so the consistency function is the identity at
// t = 0 (f(x, 0) = x exactly, whatever the network predicts); at t_max c_skip ≈ 0, c_out ≈ 1.
func TestLCMBoundary(t *testing.T) {
	lc := DefaultLCMConfig()
	if cs, co := lc.Boundary(0, 1); cs != 1 || co != 0 {
		t.Fatalf("boundary at 0: c_skip %g, c_out %g; want 1, 0", cs, co)
	}
	if cs, co := lc.Boundary(1, 1); cs > 1e-8 || math.Abs(co-1) > 1e-8 {
		t.Fatalf("boundary at t_max: c_skip %g, c_out %g; want ≈ 0, ≈ 1", cs, co)
	}
	l, store := newTestLCM(t, lc, tinyJob(t.TempDir(), 5))
	rng := rand.New(rand.NewPCG(2, 3))
	x := normals(rng, 2*32*32)
	cs, co := lc.Boundary(0, 1)
	out, err := model.NewExec(backendT(t), store, func(root *model.Scope, xn, tn, cond *Node) *Node {
		one := OnesLike(tn)
		return l.consistency(root.In(trainer.ModelScope), xn, tn, MulScalar(one, cs), MulScalar(one, co), cond)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := out.Call1(tensors.FromFlatDataAndDimensions(x, 2, 32, 32, 1), []float32{0, 0}, []int32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tensors.MustCopyFlatData[float32](got), x) {
		t.Fatal("f(x, 0) != x")
	}
}

// TestLCMPairWeights: uniform weights are all 1; iCT's weights on the cosine schedule are
// 1/(ς(t) − ς(s)) with ς = tan(πt/2) capped at 80, scaled to mean 1, so they fall with the noise
// level (checked in closed form at the first and last pair of a 1000/250 grid).
func TestLCMPairWeights(t *testing.T) {
	lc := DefaultLCMConfig()
	lc.Skip = 250
	sched := models.Schedule{Kind: "cosine"}
	for _, w := range lc.PairWeights(sched, 1) {
		if w != 1 {
			t.Fatalf("uniform weights: %v", lc.PairWeights(sched, 1))
		}
	}
	lc.Weighting = "ict"
	w := lc.PairWeights(sched, 1)
	vs := func(t float64) float64 { return math.Min(math.Tan(math.Pi/2*t), 80) }
	raw := []float64{1 / (vs(0.25) - vs(0)), 1 / (vs(0.5) - vs(0.25)), 1 / (vs(0.75) - vs(0.5)), 1 / (80 - vs(0.75))}
	sum := raw[0] + raw[1] + raw[2] + raw[3]
	for i := range raw {
		if want := raw[i] * 4 / sum; math.Abs(w[i]-want) > 1e-9*want {
			t.Errorf("ict weight of pair %d: %g, want %g", i, w[i], want)
		}
		if i > 0 && !(w[i] < w[i-1]) {
			t.Errorf("ict weights do not fall with the noise level: %v", w)
		}
	}
	if err := (LCMConfig{Timesteps: 1000, Skip: 20, Guidance: 2, Target: "auto", Distance: "mse", HuberC: 1, SigmaData: 1, TimestepScaling: 1, Weighting: "snr"}).Validate(); err == nil || !strings.Contains(err.Error(), "lcm.weighting") {
		t.Errorf("bad weighting: %v", err)
	}
}

// TestLCMLossFalls: on a fixed batch and fixed pairs, with a slow EMA target network (decay
// 0.9999: θ⁻ ≈ the initial student, so the target is nearly fixed), the iCT-weighted consistency
// loss of a full fine-tune falls: its mean over the last 5 of 40 steps is below 0.7× the first 5's.
func TestLCMLossFalls(t *testing.T) {
	lc := DefaultLCMConfig()
	lc.Distance, lc.Weighting = "mse", "ict"
	job := tinyJob(t.TempDir(), 40)
	job.Trainer.LR, job.Trainer.EMADecay = 3e-3, 0.9999
	l, _ := newTestLCM(t, lc, job)
	b := fakeBatch(rand.New(rand.NewPCG(5, 5)), 8)
	losses := stepLosses(t, 40, func(i int) (trainer.StepResult, error) {
		return l.gStep.RunInputs(i, l.inputs(b, rand.New(rand.NewPCG(1, 1)))...)
	})
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	first, last := mean(losses[:5]), mean(losses[35:])
	t.Logf("lcm loss %.6f -> %.6f", first, last)
	if !(last < 0.7*first) {
		t.Fatalf("lcm loss %g -> %g (means of 5 steps), want a fall below 0.7×", first, last)
	}
}

// TestLCMLoRA: an LCM-LoRA student (lora.rank 2; target self, and the EMA target) trains only its
// adapters: the student's base weights stay bit-identical to the teacher's, the adapters move, the
// loss is finite; with the EMA target the EMA adapters exist and trail the student's.
func TestLCMLoRA(t *testing.T) {
	for _, target := range []string{"auto", "ema"} {
		t.Run(target, func(t *testing.T) { checkLCMLoRA(t, target) })
	}
}

func checkLCMLoRA(t *testing.T, target string) {
	lc := DefaultLCMConfig()
	lc.Target = target
	job := tinyJob(t.TempDir(), 5)
	job.Trainer.LR = 3e-3
	job.Model.LoRA = &models.LoRAConfig{Rank: 2, Targets: []string{"attention", "conv"}}
	l, store := newTestLCM(t, lc, job)
	if l.self != (target == "auto") {
		t.Fatalf("lcm.target %s: target from the student itself = %v", target, l.self)
	}
	b := fakeBatch(rand.New(rand.NewPCG(5, 6)), 4)
	for i := range 3 {
		g, err := l.Step(i, b, rand.New(rand.NewPCG(uint64(i), 1)))
		if err != nil || math.IsNaN(g.Loss) {
			t.Fatalf("step %d: loss %g, %v", i, g.Loss, err)
		}
	}
	teacher := snapshot(t, store, TeacherScope)
	moved := 0
	for path, v := range snapshot(t, store, trainer.ModelScope) {
		if strings.Contains(path, "lora_") {
			if strings.HasSuffix(path, "lora_up") && slices.ContainsFunc(v, func(x float32) bool { return x != 0 }) {
				moved++
			}
			continue
		}
		if tv, ok := teacher["/"+TeacherScope+strings.TrimPrefix(path, "/"+trainer.ModelScope)]; !ok || !slices.Equal(tv, v) {
			t.Errorf("student base weight %s differs from the teacher's after LCM-LoRA steps", path)
		}
	}
	if moved == 0 {
		t.Fatal("no adapter moved")
	}
	want := 0 // rank 2 on every attention and residual-conv layer: down [in·k·k, 2], up [2, out]
	for path, v := range snapshot(t, store, trainer.ModelScope) {
		if strings.HasSuffix(path, "lora_down") || strings.HasSuffix(path, "lora_up") {
			want += len(v)
		}
	}
	if n, base := trainer.AdapterParams(store); n != want || n == 0 || base == 0 {
		t.Errorf("AdapterParams: %d adapters of %d base parameters, want %d adapters", n, base, want)
	}
	if target != "ema" {
		return
	}
	ema, model := snapshot(t, store, trainer.EMAScope), snapshot(t, store, trainer.ModelScope)
	trailing := 0
	for path, v := range model {
		if !strings.HasSuffix(path, "lora_up") {
			continue
		}
		e, ok := ema["/"+trainer.EMAScope+strings.TrimPrefix(path, "/"+trainer.ModelScope)]
		if !ok {
			t.Fatalf("no EMA adapter for %s", path)
		}
		if !slices.Equal(e, v) && slices.ContainsFunc(e, func(x float32) bool { return x != 0 }) {
			trailing++
		}
	}
	if trailing == 0 {
		t.Error("the EMA adapters do not trail the student's (equal to them, or still zero)")
	}
}
