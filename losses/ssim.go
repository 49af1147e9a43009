package losses

import (
	"math"

	. "github.com/gomlx/gomlx/core/graph"
)

// SSIMConfig holds the constants of SSIM (Wang, Bovik, Sheikh & Simoncelli, "Image Quality
// Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004, §III-B–C): an
// 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03 and the dynamic range L (2 for
// images in [-1, 1]).
type SSIMConfig struct {
	Window       int
	Sigma        float64
	K1, K2, L    float64
	ScaleWeights []float64 // multi-scale: weight of scale j (each halves the image by 2×2 means)
}

// DefaultSSIMConfig: Wang et al. 2004's constants for images in [-1, 1], one scale.
func DefaultSSIMConfig() SSIMConfig {
	return SSIMConfig{Window: 11, Sigma: 1.5, K1: 0.01, K2: 0.03, L: 2, ScaleWeights: []float64{1}}
}

// GaussianWindow is the normalized 1-D Gaussian of the SSIM window (the 2-D window is its outer
// product with itself).
func GaussianWindow(size int, sigma float64) []float64 {
	w := make([]float64, size)
	sum := 0.0
	for i := range w {
		d := float64(i) - float64(size-1)/2
		w[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

// blurMatrix is the [n−size+1, n] matrix of a "valid" 1-D correlation with the window.
func blurMatrix(g *Graph, n int, w []float64) *Node {
	out := n - len(w) + 1
	m := make([]float32, out*n)
	for p := range out {
		for k, v := range w {
			m[p*n+p+k] = float32(v)
		}
	}
	return Reshape(Const(g, m), out, n)
}

// ssimMap is the SSIM index at every valid window position (eq. 13, local statistics with the
// Gaussian window, eq. 14–16). x, y: [B, H, W, C] → [B, H−s+1, W−s+1, C].
func ssimMap(x, y *Node, c SSIMConfig) *Node {
	w := GaussianWindow(c.Window, c.Sigma)
	d := x.Shape().Dimensions
	gh, gw := blurMatrix(x.Graph(), d[1], w), blurMatrix(x.Graph(), d[2], w)
	blur := func(z *Node) *Node {
		z = Einsum("ph,bhwc->bpwc", gh, z)
		return Einsum("qw,bpwc->bpqc", gw, z)
	}
	mx, my := blur(x), blur(y)
	sxx := Sub(blur(Mul(x, x)), Mul(mx, mx))
	syy := Sub(blur(Mul(y, y)), Mul(my, my))
	sxy := Sub(blur(Mul(x, y)), Mul(mx, my))
	c1, c2 := math.Pow(c.K1*c.L, 2), math.Pow(c.K2*c.L, 2)
	num := Mul(AddScalar(MulScalar(Mul(mx, my), 2), c1), AddScalar(MulScalar(sxy, 2), c2))
	den := Mul(AddScalar(Add(Mul(mx, mx), Mul(my, my)), c1), AddScalar(Add(sxx, syy), c2))
	return Div(num, den)
}

// SSIM is the mean SSIM index per example (Wang et al. 2004, eq. 17: the mean of the local map).
// x, y: [B, H, W, C] with H, W ≥ the window → [B].
func SSIM(x, y *Node, c SSIMConfig) *Node {
	return ReduceMean(ssimMap(x, y, c), 1, 2, 3)
}

// MultiScaleSSIMLoss is Σ_j w_j·(1 − SSIM_j(x, y)) / Σ_j w_j per example, SSIM_j at scale j
// (each scale halves both sides with 2×2 means, as in Wang, Simoncelli & Bovik's MS-SSIM, Asilomar
// 2003). A weighted sum of per-scale dissimilarities instead of MS-SSIM's product of powers keeps
// the loss finite where a scale's contrast–structure term is negative. SDXS (arXiv 2403.16627,
// §3.3) trains its one-step student's warm-up on SSIM rather than MSE, which averages feasible
// outputs. x, y: [B, H, W, C] → [B].
func MultiScaleSSIMLoss(x, y *Node, c SSIMConfig) *Node {
	var loss *Node
	total := 0.0
	for j, wj := range c.ScaleWeights {
		if j > 0 {
			x, y = halve(x), halve(y)
		}
		if x.Shape().Dimensions[1] < c.Window || x.Shape().Dimensions[2] < c.Window {
			panic("losses: SSIM scale smaller than its window; use fewer ssim scales")
		}
		term := MulScalar(OneMinus(SSIM(x, y, c)), wj)
		total += wj
		if loss == nil {
			loss = term
		} else {
			loss = Add(loss, term)
		}
	}
	return MulScalar(loss, 1/total)
}

// halve averages 2×2 blocks: [B, H, W, C] → [B, H/2, W/2, C].
func halve(x *Node) *Node {
	d := x.Shape().Dimensions
	return ReduceMean(Reshape(x, d[0], d[1]/2, 2, d[2]/2, 2, d[3]), 2, 4)
}
