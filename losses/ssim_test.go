package losses

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// refSSIM is a float64 reference of Wang et al. 2004 written independently of the graph code: the
// 2-D Gaussian window applied directly (not separably) at every valid position of channel ch of
// image b; x: [B, H, W, C] flat.
func refSSIM(x, y []float64, b, h, w, c int, cfg SSIMConfig) float64 {
	g := GaussianWindow(cfg.Window, cfg.Sigma)
	c1, c2 := (cfg.K1*cfg.L)*(cfg.K1*cfg.L), (cfg.K2*cfg.L)*(cfg.K2*cfg.L)
	s := cfg.Window
	total, n := 0.0, 0
	for ch := range c {
		for p := 0; p+s <= h; p++ {
			for q := 0; q+s <= w; q++ {
				var mx, my, xx, yy, xy float64
				for i := range s {
					for j := range s {
						wt := g[i] * g[j]
						k := ((b*h+p+i)*w+q+j)*c + ch
						mx += wt * x[k]
						my += wt * y[k]
						xx += wt * x[k] * x[k]
						yy += wt * y[k] * y[k]
						xy += wt * x[k] * y[k]
					}
				}
				sxx, syy, sxy := xx-mx*mx, yy-my*my, xy-mx*my
				total += (2*mx*my + c1) * (2*sxy + c2) / ((mx*mx + my*my + c1) * (sxx + syy + c2))
				n++
			}
		}
	}
	return total / float64(n)
}

func ssimExec(t *testing.T, cfg SSIMConfig, multi bool) *model.Exec {
	t.Helper()
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	return model.MustNewExec(backend, model.NewStore(), func(_ *model.Scope, x, y *Node) *Node {
		if multi {
			return MultiScaleSSIMLoss(x, y, cfg)
		}
		return SSIM(x, y, cfg)
	})
}

// TestSSIM: SSIM(x, x) = 1; on random image pairs (correlated, odd and even sides, 2 channels)
// the graph's SSIM matches the float64 reference to 1e-5; a noisier copy scores lower.
func TestSSIM(t *testing.T) {
	cfg := DefaultSSIMConfig()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dims := range [][4]int{{2, 16, 16, 1}, {3, 21, 14, 2}} {
		bsz, h, w, c := dims[0], dims[1], dims[2], dims[3]
		x, y := make([]float64, bsz*h*w*c), make([]float64, bsz*h*w*c)
		x32, y32 := make([]float32, len(x)), make([]float32, len(x))
		for i := range x {
			x32[i] = float32(rng.Float64()*2 - 1)
			y32[i] = float32(math.Max(-1, math.Min(1, float64(x32[i])+0.3*rng.NormFloat64())))
			x[i], y[i] = float64(x32[i]), float64(y32[i])
		}
		e := ssimExec(t, cfg, false)
		xt, yt := tensors.FromFlatDataAndDimensions(x32, bsz, h, w, c), tensors.FromFlatDataAndDimensions(y32, bsz, h, w, c)
		self := tensors.MustCopyFlatData[float32](e.MustCall1(xt, xt))
		got := tensors.MustCopyFlatData[float32](e.MustCall1(xt, yt))
		for b := range bsz {
			if math.Abs(float64(self[b])-1) > 1e-5 {
				t.Errorf("%v: SSIM(x, x)[%d] = %g, want 1", dims, b, self[b])
			}
			want := refSSIM(x, y, b, h, w, c, cfg)
			if math.Abs(float64(got[b])-want) > 1e-5 {
				t.Errorf("%v: SSIM[%d] = %.7f, reference %.7f", dims, b, got[b], want)
			}
			if !(want < 0.9) {
				t.Errorf("%v: noisy copy has SSIM %g, want well below 1", dims, want)
			}
		}
	}
}

// TestMultiScaleSSIMLoss: 0 for identical images; with two scales it equals the weighted mean of
// 1 − SSIM of the images and of their 2×2-averaged halves (computed by the reference).
func TestMultiScaleSSIMLoss(t *testing.T) {
	cfg := DefaultSSIMConfig()
	cfg.Window, cfg.ScaleWeights = 7, []float64{0.3, 0.7}
	rng := rand.New(rand.NewPCG(3, 4))
	const bsz, h, w, c = 2, 16, 16, 1
	x32, y32 := make([]float32, bsz*h*w*c), make([]float32, bsz*h*w*c)
	for i := range x32 {
		x32[i] = float32(rng.Float64()*2 - 1)
		y32[i] = float32(rng.Float64()*2 - 1)
	}
	halveRef := func(v []float32) []float64 {
		out := make([]float64, bsz*h/2*w/2)
		for b := range bsz {
			for p := range h / 2 {
				for q := range w / 2 {
					s := 0.0
					for i := range 2 {
						for j := range 2 {
							s += float64(v[(b*h+2*p+i)*w+2*q+j])
						}
					}
					out[(b*h/2+p)*w/2+q] = s / 4
				}
			}
		}
		return out
	}
	to64 := func(v []float32) []float64 {
		out := make([]float64, len(v))
		for i := range v {
			out[i] = float64(v[i])
		}
		return out
	}
	e := ssimExec(t, cfg, true)
	xt, yt := tensors.FromFlatDataAndDimensions(x32, bsz, h, w, c), tensors.FromFlatDataAndDimensions(y32, bsz, h, w, c)
	self := tensors.MustCopyFlatData[float32](e.MustCall1(xt, xt))
	got := tensors.MustCopyFlatData[float32](e.MustCall1(xt, yt))
	hx, hy := halveRef(x32), halveRef(y32)
	for b := range bsz {
		want := 0.3*(1-refSSIM(to64(x32), to64(y32), b, h, w, c, cfg)) + 0.7*(1-refSSIM(hx, hy, b, h/2, w/2, c, cfg))
		if math.Abs(float64(self[b])) > 1e-5 || math.Abs(float64(got[b])-want) > 1e-5 {
			t.Errorf("[%d]: loss(x, x) = %g (want 0), loss(x, y) = %.7f (reference %.7f)", b, self[b], got[b], want)
		}
	}
}

// TestPseudoHuber: sqrt(mean d² + c²) − c per example, 0 for equal inputs.
func TestPseudoHuber(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	out := model.MustNewExec(backend, model.NewStore(), func(_ *model.Scope, x, y *Node) *Node { return PseudoHuber(x, y, 0.1) }).
		MustCall1(tensors.FromFlatDataAndDimensions([]float32{1, 2, 0, 0}, 2, 2), tensors.FromFlatDataAndDimensions([]float32{0, 0, 0, 0}, 2, 2))
	got := tensors.MustCopyFlatData[float32](out)
	want := []float64{math.Sqrt(2.5+0.01) - 0.1, 0}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-6 {
			t.Errorf("pseudo-Huber[%d] = %g, want %g", i, got[i], want[i])
		}
	}
}
