package distill

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// TestPeRFlowLinearTargetExact: on a straight line from (lo, z_e) to (hi, z_s), the line's end
// points are exact (x_lo = z_e, x_hi = z_s), and the eps-preserving target at any x_t of the line
// is exact: the DDIM step from t to lo with (x̂0*, ε*) lands on z_e (float32, 1e-5), for windows
// inside (0, 1) and for the last one (lo = 0, where x̂0* = z_e).
func TestPeRFlowLinearTargetExact(t *testing.T) {
	sched := models.DefaultDiffusionConfig().Sched()
	rng := rand.New(rand.NewPCG(4, 4))
	const n = 3 * 4 * 4 * 2
	zE, zS := make([]float32, n), make([]float32, n)
	for i := range zE {
		zE[i], zS[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	exec := model.MustNewExec(backendT(t), model.NewStore(), func(_ *model.Scope, e, s, lo, hi, tt *Node) []*Node {
		xt := Line(e, s, lo, hi, tt)
		x0, eps := PeRFlowEpsTarget(sched, xt, e, tt, lo)
		return []*Node{Line(e, s, lo, hi, lo), Line(e, s, lo, hi, hi), PeRFlowEnd(sched, x0, eps, lo), x0}
	})
	for _, w := range [][2]float32{{0.25, 0.5}, {0, 0.25}} {
		lo, hi := []float32{w[0], w[0], w[0]}, []float32{w[1], w[1], w[1]}
		tt := []float32{w[0] + 0.3*(w[1]-w[0]), w[0] + 0.7*(w[1]-w[0]), w[1]}
		outs := exec.MustCall(tensors.FromFlatDataAndDimensions(zE, 3, 4, 4, 2), tensors.FromFlatDataAndDimensions(zS, 3, 4, 4, 2), lo, hi, tt)
		check := func(name string, got []float32, want []float32) {
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("window %v, %s: element %d is %g, want %g", w, name, i, got[i], want[i])
				}
			}
		}
		check("line at lo", tensors.MustCopyFlatData[float32](outs[0]), zE)
		check("line at hi", tensors.MustCopyFlatData[float32](outs[1]), zS)
		check("DDIM end from the target", tensors.MustCopyFlatData[float32](outs[2]), zE)
		if w[0] == 0 {
			check("x̂0 target of the last window", tensors.MustCopyFlatData[float32](outs[3]), zE)
		}
	}
}

// TestPeRFlowLossFalls: on a fixed batch and fixed windows, the PeRFlow loss falls by a third in
// 30 steps (a fixed regression target: the teacher is frozen).
func TestPeRFlowLossFalls(t *testing.T) {
	cfg, _ := testLADD()
	cfg.Method = "perflow"
	pc := DefaultPeRFlowConfig()
	pc.TeacherSteps = 2
	job := tinyJob(t.TempDir(), 30)
	job.Trainer.LR = 3e-3
	m, err := NewPeRFlow(cfg, pc, fixture.teacher)(backendT(t), model.NewStore(), job, false)
	if err != nil {
		t.Fatal(err)
	}
	p := m.(*PeRFlow)
	b := fakeBatch(rand.New(rand.NewPCG(5, 5)), 8)
	l := stepLosses(t, 30, func(i int) (trainer.StepResult, error) {
		return p.gStep.RunInputs(i, p.inputs(b, rand.New(rand.NewPCG(1, 1)))...)
	})
	first, last := l[0], l[len(l)-1]
	t.Logf("perflow loss %.5f -> %.5f", first, last)
	if !(last < first*2/3) {
		t.Fatalf("perflow loss %g -> %g, want a fall of a third", first, last)
	}
}

// TestPeRFlowStartFraction: with start_fraction 1 every example sits at its window's start t_hi;
// with 0 none does (t uniform in (t_lo, t_hi]); out-of-range values are refused by name.
func TestPeRFlowStartFraction(t *testing.T) {
	for _, f := range []float64{0, 1} {
		p := &PeRFlow{pc: DefaultPeRFlowConfig(), tMax: 1}
		p.pc.StartFraction = f
		b := fakeBatch(rand.New(rand.NewPCG(5, 5)), 64)
		in := p.inputs(b, rand.New(rand.NewPCG(2, 2)))
		lo, hi, tt := in[2].Value().([]float32), in[3].Value().([]float32), in[4].Value().([]float32)
		atStart := 0
		for i := range tt {
			if !(tt[i] > lo[i] && tt[i] <= hi[i]) || hi[i]-lo[i] != 0.25 {
				t.Fatalf("fraction %g, example %d: t %g outside (%g, %g]", f, i, tt[i], lo[i], hi[i])
			}
			if tt[i] == hi[i] {
				atStart++
			}
		}
		if want := int(f) * len(tt); atStart != want {
			t.Errorf("fraction %g: %d of %d examples at the window start, want %d", f, atStart, len(tt), want)
		}
	}
	pc := DefaultPeRFlowConfig()
	pc.StartFraction = 1.5
	if err := pc.Validate(); err == nil || !strings.Contains(err.Error(), "perflow.start_fraction") {
		t.Errorf("start_fraction 1.5: got %v, want an error naming perflow.start_fraction", err)
	}
}
