package models

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

func TestScheduleEndpoints(t *testing.T) {
	for _, kind := range Schedules {
		s := DiffusionConfig{Schedule: kind, BetaMin: 0.1, BetaMax: 20}.Sched()
		a0, s0 := s.AlphaSigma(0)
		a1, s1 := s.AlphaSigma(1)
		if math.Abs(a0-1) > 1e-12 || math.Abs(s0) > 1e-12 {
			t.Errorf("%s: alpha(0), sigma(0) = %g, %g; want 1, 0", kind, a0, s0)
		}
		if a1 > 0.01 || s1 < 0.99 {
			t.Errorf("%s: alpha(1), sigma(1) = %g, %g; want ≈ 0, ≈ 1", kind, a1, s1)
		}
		prev := a0
		for i := 1; i <= 100; i++ {
			a, sg := s.AlphaSigma(float64(i) / 100)
			if a > prev {
				t.Errorf("%s: alpha not decreasing at t=%g", kind, float64(i)/100)
			}
			prev = a
			if kind != "flow" && math.Abs(a*a+sg*sg-1) > 1e-9 {
				t.Errorf("%s: alpha²+sigma² = %g at t=%g, want 1 (variance preserving)", kind, a*a+sg*sg, float64(i)/100)
			}
		}
	}
}

// TestPredictionConversions: for every schedule and parameterization, reading the exact target back
// gives (x0, eps) exactly, and the graph alpha/sigma match the host ones.
func TestPredictionConversions(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 16
	x0 := to32(randSlice(rng, n))
	eps := to32(randSlice(rng, n))
	times := make([]float32, n)
	for i := range times {
		times[i] = float32(0.02 + 0.96*rng.Float64())
	}
	for _, kind := range Schedules {
		sched := DiffusionConfig{Schedule: kind, BetaMin: 0.1, BetaMax: 20}.Sched()
		for _, p := range []Prediction{PredEps, PredV, PredX0} {
			outs := MustExecOnceN(backend, func(x0, eps, t *Node) []*Node {
				alpha, sigma := sched.AlphaSigmaNode(t)
				xt := Add(Mul(alpha, x0), Mul(sigma, eps))
				gx0, geps := p.X0Eps(xt, p.Target(x0, eps, alpha, sigma), alpha, sigma)
				return []*Node{gx0, geps, alpha, sigma}
			}, x0, eps, times)
			gx0 := tensors.MustCopyFlatData[float32](outs[0])
			geps := tensors.MustCopyFlatData[float32](outs[1])
			ga := tensors.MustCopyFlatData[float32](outs[2])
			gs := tensors.MustCopyFlatData[float32](outs[3])
			for i := range n {
				a, s := sched.AlphaSigma(float64(times[i]))
				if math.Abs(float64(ga[i])-a) > 1e-6 || math.Abs(float64(gs[i])-s) > 1e-6 {
					t.Fatalf("%s: graph alpha/sigma %g/%g vs host %g/%g at t=%g", kind, ga[i], gs[i], a, s, times[i])
				}
				if math.Abs(float64(gx0[i]-x0[i])) > 2e-4 || math.Abs(float64(geps[i]-eps[i])) > 2e-4 {
					t.Fatalf("%s/%s: round trip (x0, eps) = (%g, %g), want (%g, %g) at t=%g",
						kind, p, gx0[i], geps[i], x0[i], eps[i], times[i])
				}
			}
		}
	}
}

func TestDiffusionConfigValidate(t *testing.T) {
	ok := DefaultDiffusionConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mutate func(*DiffusionConfig)
		key    string
	}{
		{func(c *DiffusionConfig) { c.Schedule = "sigmoid" }, "diffusion.schedule"},
		{func(c *DiffusionConfig) { c.Prediction = "score" }, "diffusion.prediction"},
		{func(c *DiffusionConfig) { c.TMax = 0 }, "diffusion.t_max"},
		{func(c *DiffusionConfig) { c.Prediction = "eps" }, "diffusion.t_max"}, // alpha(1)=0 with cosine
	} {
		c := DefaultDiffusionConfig()
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !contains(err.Error(), tc.key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.key)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestScheduleDerivativesAndInverse: Derivatives match central differences of AlphaSigma, and
// TimeOfLogSNR inverts LogSNR, for every schedule.
func TestScheduleDerivativesAndInverse(t *testing.T) {
	for _, kind := range Schedules {
		s := Schedule{Kind: kind, BetaMin: 0.1, BetaMax: 20}
		for _, tt := range []float64{0.05, 0.3, 0.5, 0.9, 0.99} {
			const h = 1e-6
			a1, s1 := s.AlphaSigma(tt + h)
			a0, s0 := s.AlphaSigma(tt - h)
			da, ds := s.Derivatives(tt)
			if math.Abs(da-(a1-a0)/(2*h)) > 1e-5 || math.Abs(ds-(s1-s0)/(2*h)) > 1e-5 {
				t.Errorf("%s t=%g: derivatives (%g, %g), finite differences (%g, %g)", kind, tt, da, ds, (a1-a0)/(2*h), (s1-s0)/(2*h))
			}
			if back := s.TimeOfLogSNR(s.LogSNR(tt), 1); math.Abs(back-tt) > 1e-9 {
				t.Errorf("%s: TimeOfLogSNR(LogSNR(%g)) = %g", kind, tt, back)
			}
			alpha, sigma := s.AlphaSigma(tt)
			if math.Abs(s.SigmaBar(tt)-sigma/alpha) > 1e-9*sigma/alpha {
				t.Errorf("%s: SigmaBar(%g) = %g, want %g", kind, tt, s.SigmaBar(tt), sigma/alpha)
			}
		}
	}
}

// TestScheduleShift: diffusion.shift s moves every schedule's logSNR by exactly −2·log s, stays in
// its family (VP: α² + σ² = 1; flow: α + σ = 1, where it is SD3's t' = s·t/(1 + (s−1)·t)), keeps
// the end points, and its derivatives and graph form agree with the host values.
func TestScheduleShift(t *testing.T) {
	backend := testBackend(t)
	times := []float32{0.05, 0.2, 0.5, 0.8, 0.97}
	for _, kind := range Schedules {
		base := Schedule{Kind: kind, BetaMin: 0.1, BetaMax: 20}
		for _, shift := range []float64{0.25, 3} {
			s := base
			s.Shift = shift
			if a, sg := s.AlphaSigma(0); math.Abs(a-1) > 1e-12 || math.Abs(sg) > 1e-12 {
				t.Errorf("%s shift %g: alpha(0), sigma(0) = %g, %g", kind, shift, a, sg)
			}
			if a, _ := s.AlphaSigma(1); kind != "linear" && math.Abs(a) > 1e-12 {
				t.Errorf("%s shift %g: alpha(1) = %g, want 0", kind, shift, a)
			}
			outs := MustExecOnceN(backend, func(tt *Node) []*Node {
				a, sg := s.AlphaSigmaNode(tt)
				return []*Node{a, sg}
			}, times)
			ga := tensors.MustCopyFlatData[float32](outs[0])
			gs := tensors.MustCopyFlatData[float32](outs[1])
			for i, t32 := range times {
				tt := float64(t32)
				a, sg := s.AlphaSigma(tt)
				if want := base.LogSNR(tt) - 2*math.Log(shift); math.Abs(s.LogSNR(tt)-want) > 1e-9 {
					t.Errorf("%s shift %g t=%g: logSNR %g, want %g", kind, shift, tt, s.LogSNR(tt), want)
				}
				if kind == "flow" {
					want := shift * tt / (1 + (shift-1)*tt)
					if math.Abs(sg-want) > 1e-12 || math.Abs(a+sg-1) > 1e-12 {
						t.Errorf("flow shift %g t=%g: (alpha, sigma) = (%g, %g), want sigma %g = 1 − alpha", shift, tt, a, sg, want)
					}
				} else if math.Abs(a*a+sg*sg-1) > 1e-12 {
					t.Errorf("%s shift %g t=%g: alpha²+sigma² = %g", kind, shift, tt, a*a+sg*sg)
				}
				const h = 1e-6
				a1, s1 := s.AlphaSigma(tt + h)
				a0, s0 := s.AlphaSigma(tt - h)
				da, ds := s.Derivatives(tt)
				if math.Abs(da-(a1-a0)/(2*h)) > 1e-5 || math.Abs(ds-(s1-s0)/(2*h)) > 1e-5 {
					t.Errorf("%s shift %g t=%g: derivatives (%g, %g), finite differences (%g, %g)", kind, shift, tt, da, ds, (a1-a0)/(2*h), (s1-s0)/(2*h))
				}
				if math.Abs(float64(ga[i])-a) > 1e-6 || math.Abs(float64(gs[i])-sg) > 1e-6 {
					t.Errorf("%s shift %g t=%g: graph (%g, %g), host (%g, %g)", kind, shift, tt, ga[i], gs[i], a, sg)
				}
			}
		}
	}
	if err := (DiffusionConfig{Schedule: "cosine", Prediction: "v", BetaMin: 0.1, BetaMax: 20, TMax: 1, Shift: 0}).Validate(); err == nil || !strings.Contains(err.Error(), "diffusion.shift") {
		t.Errorf("shift 0: got %v, want an error naming diffusion.shift", err)
	}
}
