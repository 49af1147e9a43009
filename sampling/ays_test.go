package sampling

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// gaussDist is E‖D(x_g) − D(x_a)‖² for data N(0, c²) (one pixel) and the exact denoiser
// D(x_t) = k_t·x_t, k_t = α c²/(α²c² + σ²), on one forward path x_t = α x0 + σ ε:
// (k_g α_g − k_a α_a)²·c² + (k_g σ_g − k_a σ_a)².
func gaussDist(sched models.Schedule, ts []float64, c float64) func(a, g int) float64 {
	return func(a, g int) float64 {
		k := func(t float64) (float64, float64) {
			alpha, sigma := sched.AlphaSigma(t)
			kt := alpha * c * c / (alpha*alpha*c*c + sigma*sigma)
			return kt * alpha, kt * sigma
		}
		ga, gs := k(ts[g])
		aa, as := k(ts[a])
		return (ga-aa)*(ga-aa)*c*c + (gs-as)*(gs-as)
	}
}

// TestAYSBeatsHandmadeSpacings: on Gaussian data with the closed-form KLUB integrand, the optimized
// schedule's KLUB is below that of the trailing, uniform, karras and logsnr spacings at the same
// step count, all measured on one grid; and refining the grid does not raise the optimum.
func TestAYSBeatsHandmadeSpacings(t *testing.T) {
	for _, kind := range []string{"cosine", "linear"} {
		sched := models.Schedule{Kind: kind, BetaMin: 0.1, BetaMax: 20}
		tMax := 1.0
		if kind == "linear" {
			tMax = 0.999
		}
		for _, n := range []int{4, 10} {
			cfg := DefaultConfig()
			cfg.Steps = n
			baselines := map[string][]float64{}
			var extra [][]float64
			for _, sp := range []string{"trailing", "uniform", "karras", "logsnr"} {
				c := cfg
				c.Spacing = sp
				ts, err := Times(c, sched, tMax, nil)
				if err != nil {
					t.Fatal(err)
				}
				baselines[sp] = ts[:n]
				extra = append(extra, ts[:n])
			}
			var prev float64
			for _, size := range []int{100, 400} {
				grid := KLUBTimes(sched, tMax, cfg.SigmaMin, cfg.SigmaMax, size, extra...)
				k, err := NewKLUBGrid(sched, grid, gaussDist(sched, grid, 0.5))
				if err != nil {
					t.Fatal(err)
				}
				knots, best, err := k.Optimize(n)
				if err != nil {
					t.Fatal(err)
				}
				if size == 400 && best > prev*(1+1e-9) {
					t.Errorf("%s n=%d: finer grid raised the optimum %g -> %g", kind, n, prev, best)
				}
				prev = best
				opt := make([]float64, n)
				for i, j := range knots {
					opt[i] = grid[j]
				}
				t.Logf("%s n=%d grid %d: AYS KLUB %.4g at t=%.4f", kind, n, len(grid), best, opt)
				for name, ts := range baselines {
					kn, err := k.Knots(ts)
					if err != nil {
						t.Fatal(err)
					}
					v := k.KLUB(kn)
					t.Logf("  %-8s KLUB %.4g", name, v)
					if !(best < v) {
						t.Errorf("%s n=%d: AYS KLUB %g not below %s %g", kind, n, best, name, v)
					}
				}
			}
		}
	}
}

// TestDenoiseAt: the sampler's x̂0 at (α x0 + σ ε, t) equals the closed-form posterior mean.
func TestDenoiseAt(t *testing.T) {
	sched := models.Schedule{Kind: "cosine"}
	cfg := DefaultConfig()
	cfg.CFG, cfg.ClipX0, cfg.BatchSize = 1, false, 3
	smp, err := NewSampler(testBackend(t), model.NewStore(), Model{Den: analyticDenoiser(sched, 0.5), Scope: "g", TMax: 1}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	x0 := []float32{0.1, -0.3, 0.7, 0.2, 0.9}
	eps := []float32{1, -0.5, 0.2, 2, -1}
	got, err := smp.DenoiseAt(x0, eps, make([]int32, 5), 0.4, 1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, s := sched.AlphaSigma(0.4)
	for i := range x0 {
		xt := a*float64(x0[i]) + s*float64(eps[i])
		want := a * 0.25 / (a*a*0.25 + s*s) * xt
		if math.Abs(float64(got[i])-want) > 1e-5 {
			t.Errorf("image %d: x̂0 %g, want %g", i, got[i], want)
		}
	}
}

// TestRefine: each pass of the coordinate refinement lowers the KLUB (never raises it), zero passes
// return the initialization, the result never beats the exact DP optimum, and the first knot stays
// at t_max.
func TestRefine(t *testing.T) {
	sched := models.Schedule{Kind: "cosine"}
	cfg := DefaultConfig()
	cfg.Steps, cfg.Spacing = 10, "karras"
	ts, err := Times(cfg, sched, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	grid := KLUBTimes(sched, 1, cfg.SigmaMin, cfg.SigmaMax, 200, ts[:10])
	k, err := NewKLUBGrid(sched, grid, gaussDist(sched, grid, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	init, err := k.Knots(ts[:10])
	if err != nil {
		t.Fatal(err)
	}
	_, opt, err := k.Optimize(10)
	if err != nil {
		t.Fatal(err)
	}
	prev := k.KLUB(init)
	same, v0, err := k.Refine(init, 0)
	if err != nil || v0 != prev || !slices.Equal(same, init) {
		t.Fatalf("0 passes: %v %g (want %v %g), %v", same, v0, init, prev, err)
	}
	for p := 1; p <= 4; p++ {
		knots, v, err := k.Refine(init, p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("passes %d: KLUB %.5g (karras %.5g, optimum %.5g)", p, v, k.KLUB(init), opt)
		if v > prev || v < opt*(1-1e-9) || knots[0] != 0 {
			t.Errorf("passes %d: KLUB %g after %g (optimum %g), knots %v", p, v, prev, opt, knots)
		}
		if p == 1 && !(v < prev) {
			t.Errorf("one pass did not lower the KLUB of karras (%g)", prev)
		}
		prev = v
	}
	if _, _, err := k.Refine([]int{3, 5}, 1); err == nil {
		t.Error("knots not starting at t_max were accepted")
	}
}
