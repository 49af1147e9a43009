package sampling

import (
	"math"

	"github.com/fewstep/fewstep/models"
)

// coefs are the host coefficients of CombineStep: x' = c0·x + c1·x̂0 + c2·ε̂ + c3·aux + c4·z.
type coefs [5]float64

// ddimCoefs: DDIM from t to s with stochasticity eta (Song et al., arXiv 2010.02502, eq. 12 and 16,
// written for any (alpha, sigma)): x_s = α_s·x̂0 + √(σ_s² − σ_η²)·ε̂ + σ_η·z, where
// σ_η = eta·σ_s·√(1 − (α_t σ_s / (α_s σ_t))²) is eta times the std of the posterior q(x_s | x_t, x0).
// eta = 1 is ancestral sampling of the DDPM posterior (Ho et al., arXiv 2006.11239, eq. 6–7).
func ddimCoefs(sched models.Schedule, t, s, eta float64) coefs {
	at, st := sched.AlphaSigma(t)
	as, ss := sched.AlphaSigma(s)
	var sEta float64
	if eta > 0 && s > 0 {
		r := at * ss / (as * st)
		sEta = eta * ss * math.Sqrt(max(0, 1-r*r))
	}
	return coefs{0, as, math.Sqrt(max(0, ss*ss-sEta*sEta)), 0, sEta}
}

// eulerCoefs: one Euler step of the probability-flow ODE in t, dx/dt = α'(t)·x̂0 + σ'(t)·ε̂:
// x_s = x_t + (s − t)·(α'(t)·x̂0 + σ'(t)·ε̂).
func eulerCoefs(sched models.Schedule, t, s float64) coefs {
	da, ds := sched.Derivatives(t)
	h := s - t
	return coefs{1, h * da, h * ds, 0, 0}
}

// heunCorrectorCoefs: the second stage of Heun's method (Karras et al., arXiv 2206.00364, Alg. 1,
// lines 9–11) evaluated at the Euler predictor x̃_s: x_s = x_t + (s−t)/2·(d_t + d_s), and since
// x̃_s = x_t + (s−t)·d_t this is ½·x_t + ½·x̃_s + (s−t)/2·d_s. The executor's x is x̃_s, aux is x_t.
func heunCorrectorCoefs(sched models.Schedule, t, s float64) coefs {
	da, ds := sched.Derivatives(s)
	h := s - t
	return coefs{0.5, h / 2 * da, h / 2 * ds, 0.5, 0}
}

// dpmppExpNegH is e^{−h} with h = λ_s − λ_t, λ = log(α/σ): (α_t σ_s)/(σ_t α_s), finite at both
// ends of the schedule (0 where α_t = 0 or σ_s = 0).
func dpmppExpNegH(sched models.Schedule, t, s float64) float64 {
	at, st := sched.AlphaSigma(t)
	as, ss := sched.AlphaSigma(s)
	return at * ss / (st * as)
}

// dpmpp2MCoefs: DPM-Solver++(2M) (Lu et al., arXiv 2211.01095, Algorithm 2) from t to s with the
// previous step's data prediction as aux: x_s = (σ_s/σ_t)·x_t + α_s(1 − e^{−h})·D, where
// D = (1 + 1/(2r))·x̂0 − 1/(2r)·x̂0_prev and r = h_prev/h. With no usable previous step (the first
// step, a step to s = 0, or an infinite h_prev from t = T where α = 0) it is the first-order
// update (= DDIM). hPrev is the previous step's h (NaN for none); it returns the coefficients and h.
func dpmpp2MCoefs(sched models.Schedule, t, s, hPrev float64) (coefs, float64) {
	_, st := sched.AlphaSigma(t)
	as, ss := sched.AlphaSigma(s)
	e := dpmppExpNegH(sched, t, s)
	h := -math.Log(e) // +Inf when e = 0
	phi := as * (1 - e)
	c := coefs{ss / st, phi, 0, 0, 0}
	if math.IsNaN(hPrev) || math.IsInf(hPrev, 0) || math.IsInf(h, 0) || s == 0 {
		return c, h
	}
	inv2r := h / (2 * hPrev)
	c[1] = phi * (1 + inv2r)
	c[3] = -phi * inv2r
	return c, h
}
