package sampling

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// analyticDenoiser is the exact posterior mean for data x0 ~ N(0, s²) per pixel:
// E[x0 | x_t] = alpha·s²/(alpha²·s² + sigma²)·x_t (x0-prediction; the class is ignored).
func analyticDenoiser(sched models.Schedule, s float64) *models.Denoiser {
	net := func(_ *model.Scope, xt, t, _ *Node) *Node {
		alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
		c := Div(MulScalar(alpha, s*s), Add(MulScalar(Square(alpha), s*s), Square(sigma)))
		return Mul(c, xt)
	}
	return &models.Denoiser{Net: net, Prediction: models.PredX0, Schedule: sched}
}

// TestDDIMOnGaussianData: with the analytic denoiser every DDIM step is a known scalar map, so the
// sampler must reproduce the host product exactly, and with many steps the probability-flow ODE
// maps unit noise to the data scale s.
func TestDDIMOnGaussianData(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	const s = 0.5
	for _, kind := range []string{"cosine", "linear", "flow"} {
		dc := models.DefaultDiffusionConfig()
		dc.Schedule = kind
		dc.TMax = 0.9999
		sched := dc.Sched()
		for _, steps := range []int{5, 1000} {
			cfg := DefaultConfig()
			cfg.Steps, cfg.CFG, cfg.ClipX0 = steps, 1, false
			smp, err := NewSampler(backend, model.NewStore(), Model{Den: analyticDenoiser(sched, s), Scope: "net", NullClass: 10, TMax: dc.TMax}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			seeds := []uint64{11, 12}
			imgs, err := smp.SampleRaw(seeds, []int32{0, 1}, 4, 4, 1)
			if err != nil {
				t.Fatal(err)
			}
			factor := 1.0
			ts := UniformTimes(steps, dc.TMax)
			for i := 0; i+1 < len(ts); i++ {
				at, st := sched.AlphaSigma(ts[i])
				as, ss := sched.AlphaSigma(ts[i+1])
				c := at * s * s / (at*at*s*s + st*st)
				factor *= as*c + ss*(1-at*c)/st
			}
			for k, seed := range seeds {
				noise := NoiseForSeed(seed, 16)
				for j := range noise {
					want := factor * float64(noise[j])
					if got := float64(imgs[k*16+j]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
						t.Fatalf("%s, %d steps: pixel %d = %g, want %g", kind, steps, j, got, want)
					}
				}
			}
			// The exact flow from t_max maps N(0, alpha²s²+sigma²) at t_max to N(0, s²).
			at, st := sched.AlphaSigma(dc.TMax)
			exact := s / math.Sqrt(at*at*s*s+st*st)
			if steps == 1000 && math.Abs(factor-exact) > 0.005*exact {
				t.Errorf("%s: 1000-step DDIM scale %g, exact ODE scale %g", kind, factor, exact)
			}
		}
	}
}

// TestLatentSamplesAreNotClipped: on data of scale 2 (latents are unit-variance, not bounded by
// [-1, 1]) a pixel sampler with clip_x0 clips x̂0 and clamps its output, while a latent sampler
// (Model.Latent) with the same config reproduces the unclipped DDIM solution exactly.
func TestLatentSamplesAreNotClipped(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	const s = 2.0
	dc := models.DefaultDiffusionConfig()
	dc.TMax = 0.9999
	sched := dc.Sched()
	cfg := DefaultConfig()
	cfg.Steps, cfg.CFG, cfg.ClipX0 = 8, 1, true
	unclipped := cfg
	unclipped.ClipX0 = false
	seeds, cond := []uint64{3, 4, 5, 6}, []int32{0, 1, 2, 3}
	run := func(c Config, latent bool) []float32 {
		smp, err := NewSampler(backend, model.NewStore(), Model{Den: analyticDenoiser(sched, s), Scope: "net", NullClass: 10, TMax: dc.TMax, Latent: latent}, c)
		if err != nil {
			t.Fatal(err)
		}
		out, err := smp.Sample(seeds, cond, 4, 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := run(unclipped, true)
	pixel, latent := run(cfg, false), run(cfg, true)
	beyond := 0
	for i, v := range want {
		if math.Abs(float64(v)) > 1 {
			beyond++
		}
		if latent[i] != v {
			t.Fatalf("latent sampler value %d = %g, unclipped solution %g", i, latent[i], v)
		}
		if math.Abs(float64(pixel[i])) > 1 {
			t.Fatalf("pixel sampler value %d = %g, outside [-1, 1]", i, pixel[i])
		}
	}
	if beyond == 0 {
		t.Fatal("no value of the scale-2 solution lies outside [-1, 1]: the test shows nothing")
	}
}

// TestNoiseIsPerSeed: an image's noise depends only on its seed, not on the batch it is in.
func TestNoiseIsPerSeed(t *testing.T) {
	a, b := NoiseForSeed(3, 8), NoiseForSeed(3, 16)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("noise prefix differs with length")
		}
	}
	if NoiseForSeed(4, 8)[0] == a[0] {
		t.Fatal("different seeds gave the same noise")
	}
}

func TestUniformTimes(t *testing.T) {
	ts := UniformTimes(4, 1)
	want := []float64{1, 0.75, 0.5, 0.25, 0}
	for i := range want {
		if ts[i] != want[i] {
			t.Fatalf("UniformTimes(4,1) = %v, want %v", ts, want)
		}
	}
}
