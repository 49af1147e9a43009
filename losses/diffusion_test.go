package losses

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// TestDiffusionLossPerExample: with a network that returns a constant c, the loss of example b
// is mean((c − target_b)²), exactly, one value per example.
func TestDiffusionLossPerExample(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	const c = 0.25
	x0 := []float32{1, -1, 0.5, 0, 0.2, 0.4, -0.6, 0.8} // [2, 2, 2, 1]
	eps := []float32{0.1, 0.2, -0.3, 0.4, 1, -1, 1, -1}
	ts := []float32{0.3, 0.8}
	for _, p := range []models.Prediction{models.PredEps, models.PredV, models.PredX0} {
		d := &models.Denoiser{Prediction: p, Schedule: models.DefaultDiffusionConfig().Sched(),
			Net: func(_ *model.Scope, xt, _, _ *Node) *Node { return AddScalar(ZerosLike(xt), c) }}
		out := model.MustNewExec(backend, model.NewStore(), func(scope *model.Scope, x0n, epsn, tn, cond *Node) *Node {
			return Diffusion(d, scope, x0n, epsn, tn, cond)
		}).MustCall1(tensors.FromFlatDataAndDimensions(x0, 2, 2, 2, 1), tensors.FromFlatDataAndDimensions(eps, 2, 2, 2, 1),
			ts, []int32{0, 1})
		got := tensors.MustCopyFlatData[float32](out)
		if len(got) != 2 {
			t.Fatalf("%s: loss has %d values, want one per example (2)", p, len(got))
		}
		for b := range 2 {
			alpha, sigma := math.Cos(math.Pi/2*float64(ts[b])), math.Sin(math.Pi/2*float64(ts[b]))
			want := 0.0
			for i := range 4 {
				x, e := float64(x0[b*4+i]), float64(eps[b*4+i])
				target := map[models.Prediction]float64{models.PredEps: e, models.PredX0: x, models.PredV: alpha*e - sigma*x}[p]
				want += (c - target) * (c - target) / 4
			}
			if math.Abs(float64(got[b])-want) > 1e-6 {
				t.Errorf("%s: loss[%d] = %g, want %g", p, b, got[b], want)
			}
		}
	}
}

// TestAdversarialLosses: the hinge and non-saturating losses at known logits.
func TestAdversarialLosses(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	real := []float32{2, 0.5, -1}
	fake := []float32{-2, 0.25, 3}
	outs := MustExecOnceN(backend, func(r, f *Node) []*Node {
		return []*Node{HingeDiscriminator(r, f), HingeGenerator(f), NonSaturatingGenerator(f)}
	}, real, fake)
	d, g, ns := outs[0].Value().([]float32), outs[1].Value().([]float32), outs[2].Value().([]float32)
	for i := range real {
		wantD := math.Max(0, 1-float64(real[i])) + math.Max(0, 1+float64(fake[i]))
		wantNS := math.Log1p(math.Exp(-float64(fake[i])))
		if math.Abs(float64(d[i])-wantD) > 1e-6 || g[i] != -fake[i] || math.Abs(float64(ns[i])-wantNS) > 1e-6 {
			t.Errorf("logits (%g, %g): hinge D %g (want %g), hinge G %g, non-saturating %g (want %g)", real[i], fake[i], d[i], wantD, g[i], ns[i], wantNS)
		}
	}
}
