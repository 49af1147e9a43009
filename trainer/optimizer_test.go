package trainer

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestAdamWMatchesReference runs 3 steps of the in-graph clipped AdamW + EMA on
// loss = Σ w² ⊙ c + Σ b (w: [2,2] decayed, b: [2] not decayed) and compares with a float64 host
// implementation of the same formulas.
func TestAdamWMatchesReference(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WeightDecay = 0.1
	cfg.GradClip = 1.5
	w0 := []float64{1, -2, 0.5, 3}
	c := []float64{1, 2, 3, 4}
	b0 := []float64{0.3, -0.7}
	store := model.NewStore()
	f32 := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i := range v {
			out[i] = float32(v[i])
		}
		return out
	}
	if _, err := store.CreateVariable("/model/w", tensors.FromFlatDataAndDimensions(f32(w0), 2, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateVariable("/model/b", tensors.FromFlatDataAndDimensions(f32(b0), 2)); err != nil {
		t.Fatal(err)
	}
	exec, err := model.NewExec(testBackend(t), store, func(root *model.Scope, lr, step, ema *Node) *Node {
		g := lr.Graph()
		root.SetTraining(g, true)
		w := store.GetVariable("/model/w").NodeValue(g)
		b := store.GetVariable("/model/b").NodeValue(g)
		loss := Add(ReduceAllSum(Mul(Square(w), Const(g, [][]float32{{1, 2}, {3, 4}}))), ReduceAllSum(b))
		gnorm, _ := applyAdamW(cfg, store, loss, stepInputs{lr: lr, step: step, emaDecay: ema},
			func(*Node) *Node { return Const(g, true) })
		return gnorm
	})
	if err != nil {
		t.Fatal(err)
	}
	// Host reference.
	p := append(append([]float64{}, w0...), b0...)
	ema := append([]float64{}, p...)
	m, v := make([]float64, 6), make([]float64, 6)
	for step := range 3 {
		lr, d := LR(cfg, step), EMADecay(cfg, step)
		grad := make([]float64, 6)
		norm := 0.0
		for i := range 4 {
			grad[i] = 2 * c[i] * p[i]
		}
		grad[4], grad[5] = 1, 1
		for _, gr := range grad {
			norm += gr * gr
		}
		scale := math.Min(1, cfg.GradClip/(math.Sqrt(norm)+1e-6))
		for i := range p {
			gr := grad[i] * scale
			m[i] = cfg.Beta1*m[i] + (1-cfg.Beta1)*gr
			v[i] = cfg.Beta2*v[i] + (1-cfg.Beta2)*gr*gr
			mh := m[i] / (1 - math.Pow(cfg.Beta1, float64(step+1)))
			vh := v[i] / (1 - math.Pow(cfg.Beta2, float64(step+1)))
			if i < 4 {
				p[i] -= lr * cfg.WeightDecay * p[i]
			}
			p[i] -= lr * mh / (math.Sqrt(vh) + cfg.Epsilon)
			ema[i] = d*ema[i] + (1-d)*p[i]
		}
		gn, err := exec.Call1(tensors.FromScalar(float32(lr)), tensors.FromScalar(float32(step+1)), tensors.FromScalar(float32(d)))
		if err != nil {
			t.Fatal(err)
		}
		if got := float64(tensors.ToScalar[float32](gn)); math.Abs(got-math.Sqrt(norm)) > 1e-4*math.Sqrt(norm) {
			t.Fatalf("step %d: grad norm %g, want %g", step, got, math.Sqrt(norm))
		}
	}
	check := func(path string, want []float64) {
		got := tensors.MustCopyFlatData[float32](store.GetVariable(path).MustValue())
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-5*(1+math.Abs(want[i])) {
				t.Errorf("%s[%d] = %.7f, want %.7f", path, i, got[i], want[i])
			}
		}
	}
	check("/model/w", p[:4])
	check("/model/b", p[4:])
	check("/ema/w", ema[:4])
	check("/ema/b", ema[4:])
	check("/opt/m/model/w", m[:4])
	check("/opt/v/model/b", v[4:])
	if store.GetVariable("/ema/w").Trainable || store.GetVariable("/opt/m/model/w").Trainable {
		t.Error("EMA and optimizer variables must be non-trainable")
	}
	_ = dtypes.Float32
}

// TestSchedules is the table test of the pure step schedules.
func TestSchedules(t *testing.T) {
	cfg := Config{Steps: 109, LR: 1, WarmupSteps: 9, MinLRRatio: 0.1, EMADecay: 0.999}
	for _, tc := range []struct {
		step   int
		lr     float64
		emaDec float64
	}{
		{0, 0.1, 0.1},      // warmup (0+1)/(9+1); EMA (1+0)/(10+0)
		{4, 0.5, 5.0 / 14}, // warmup midway
		{9, 1, 10.0 / 19},  // peak at the end of warmup
		{59, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi*0.5)), 60.0 / 69}, // half-way down the cosine
		{108, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi*0.99)), 109.0 / 118},
		{100000, 0.1, 0.999}, // floor; EMA capped at ema_decay
	} {
		if got := LR(cfg, tc.step); math.Abs(got-tc.lr) > 1e-12 {
			t.Errorf("LR(step %d) = %.6f, want %.6f", tc.step, got, tc.lr)
		}
		if got := EMADecay(cfg, tc.step); math.Abs(got-tc.emaDec) > 1e-12 {
			t.Errorf("EMADecay(step %d) = %.6f, want %.6f", tc.step, got, tc.emaDec)
		}
	}
}
