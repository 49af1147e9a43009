package models

import (
	"fmt"
	"math"
	"slices"

	. "github.com/gomlx/gomlx/core/graph"
)

// DiffusionConfig is the `diffusion:` section: the forward process x_t = alpha(t)·x0 + sigma(t)·eps
// and what the network predicts.
type DiffusionConfig struct {
	// Schedule is cosine (VP, alpha = cos(πt/2), sigma = sin(πt/2); Nichol & Dhariwal arXiv 2102.09672
	// in continuous form), linear (VP with beta(t) linear from beta_min to beta_max; Song et al.
	// arXiv 2011.13456 eq. 33) or flow (rectified flow, alpha = 1−t, sigma = t; Liu et al. arXiv 2209.03003).
	Schedule string `mapstructure:"schedule"`
	// Prediction is the network target: eps, v (alpha·eps − sigma·x0; Salimans & Ho arXiv 2202.00512) or x0.
	Prediction string `mapstructure:"prediction"`
	// BetaMin and BetaMax parameterize the linear VP schedule.
	BetaMin float64 `mapstructure:"beta_min"`
	BetaMax float64 `mapstructure:"beta_max"`
	// TMax is the largest time used in training and the start time of sampling.
	TMax float64 `mapstructure:"t_max"`
	// Shift s rescales the schedule's noise-to-signal ratio: σ̄'(t) = s·σ̄(t) with σ̄ = σ/α, i.e.
	// logSNR'(t) = logSNR(t) − 2·log s, mapped back into the same family (VP: α'² + σ'² = 1; flow:
	// α' + σ' = 1, where it is SD3's t' = s·t/(1 + (s−1)·t), Esser et al. arXiv 2403.03206 §5.3.2).
	// The resolution-dependent shift of "simple diffusion" (Hoogeboom et al., arXiv 2301.11093 §3.1):
	// s > 1 puts more of training and sampling at high noise (larger images), s < 1 at low noise
	// (small inputs such as 8×8 latents). The end points t = 0 and α(1) = 0 are kept. 1 = unshifted.
	Shift float64 `mapstructure:"shift"`
}

// DefaultDiffusionConfig: cosine schedule, v-prediction (well defined at every t, including t=1).
func DefaultDiffusionConfig() DiffusionConfig {
	return DiffusionConfig{Schedule: "cosine", Prediction: "v", BetaMin: 0.1, BetaMax: 20, TMax: 1, Shift: 1}
}

// Schedules and Predictions list the accepted values.
var (
	Schedules   = []string{"cosine", "linear", "flow"}
	Predictions = []string{"eps", "v", "x0"}
)

// Validate checks every key; errors name the key as "diffusion.<key>".
func (c DiffusionConfig) Validate() error {
	if !slices.Contains(Schedules, c.Schedule) {
		return fmt.Errorf("diffusion.schedule: unknown value %q (known: %v)", c.Schedule, Schedules)
	}
	if !slices.Contains(Predictions, c.Prediction) {
		return fmt.Errorf("diffusion.prediction: unknown value %q (known: %v)", c.Prediction, Predictions)
	}
	if c.BetaMin <= 0 || c.BetaMax <= c.BetaMin {
		return fmt.Errorf("diffusion.beta_min/beta_max: need 0 < beta_min < beta_max, got %g, %g", c.BetaMin, c.BetaMax)
	}
	if !(c.Shift > 0) || math.IsInf(c.Shift, 0) {
		return fmt.Errorf("diffusion.shift: must be a positive number (1 = unshifted), got %g", c.Shift)
	}
	if !(c.TMax > 0 && c.TMax <= 1) {
		return fmt.Errorf("diffusion.t_max: must be in (0, 1], got %g", c.TMax)
	}
	if alpha, _ := c.Sched().AlphaSigma(c.TMax); c.Prediction == "eps" && alpha < 1e-6 {
		return fmt.Errorf("diffusion.t_max: eps-prediction cannot recover x0 where alpha(t_max)=%.2g; set t_max below 1 (e.g. 0.999) or use prediction v", alpha)
	}
	return nil
}

// Sched returns the schedule of the config.
func (c DiffusionConfig) Sched() Schedule {
	return Schedule{Kind: c.Schedule, BetaMin: c.BetaMin, BetaMax: c.BetaMax, Shift: c.Shift}
}

// Schedule gives alpha(t) and sigma(t) on the host (float64) and in the graph.
type Schedule struct {
	Kind             string
	BetaMin, BetaMax float64
	// Shift is DiffusionConfig.Shift; 0 and 1 both mean unshifted.
	Shift float64
}

// shifted reports whether the schedule has a shift other than 1.
func (s Schedule) shifted() bool { return s.Shift != 0 && s.Shift != 1 }

// AlphaSigma returns alpha(t), sigma(t) for a host time t in [0, 1].
func (s Schedule) AlphaSigma(t float64) (alpha, sigma float64) {
	a, b := s.base(t)
	if !s.shifted() {
		return a, b
	}
	d := s.shiftNorm(a, b)
	return a / d, s.Shift * b / d
}

// shiftNorm is the normalizer of the shifted schedule at the base (α, σ): α' = α/d, σ' = s·σ/d with
// d = √(α² + s²σ²) for the VP schedules and α + s·σ for flow.
func (s Schedule) shiftNorm(a, b float64) float64 {
	if s.Kind == "flow" {
		return a + s.Shift*b
	}
	return math.Hypot(a, s.Shift*b)
}

// base is the unshifted alpha(t), sigma(t).
func (s Schedule) base(t float64) (alpha, sigma float64) {
	switch s.Kind {
	case "cosine":
		return math.Cos(math.Pi / 2 * t), math.Sin(math.Pi / 2 * t)
	case "linear":
		logAlpha := -0.25*t*t*(s.BetaMax-s.BetaMin) - 0.5*t*s.BetaMin
		return math.Exp(logAlpha), math.Sqrt(-math.Expm1(2 * logAlpha))
	case "flow":
		return 1 - t, t
	}
	panic(fmt.Sprintf("unknown schedule %q", s.Kind))
}

// AlphaSigmaNode is AlphaSigma in the graph. t: any shape → alpha, sigma of the same shape.
func (s Schedule) AlphaSigmaNode(t *Node) (alpha, sigma *Node) {
	a, b := s.baseNode(t)
	if !s.shifted() {
		return a, b
	}
	sb := MulScalar(b, s.Shift)
	var d *Node
	if s.Kind == "flow" {
		d = Add(a, sb)
	} else {
		d = Sqrt(Add(Square(a), Square(sb)))
	}
	return Div(a, d), Div(sb, d)
}

// baseNode is the unshifted AlphaSigmaNode.
func (s Schedule) baseNode(t *Node) (alpha, sigma *Node) {
	switch s.Kind {
	case "cosine":
		a := MulScalar(t, math.Pi/2)
		return Cos(a), Sin(a)
	case "linear":
		logAlpha := Sub(MulScalar(Square(t), -0.25*(s.BetaMax-s.BetaMin)), MulScalar(t, 0.5*s.BetaMin))
		alpha = Exp(logAlpha)
		return alpha, Sqrt(Max(Neg(Expm1(MulScalar(logAlpha, 2))), ZerosLike(t)))
	case "flow":
		return OneMinus(t), t
	}
	panic(fmt.Sprintf("unknown schedule %q", s.Kind))
}

// Prediction is the quantity a network outputs.
type Prediction string

const (
	PredEps Prediction = "eps"
	PredV   Prediction = "v"
	PredX0  Prediction = "x0"
)

// safeDenominator keeps divisions by alpha or sigma finite at the ends of the schedule.
const safeDenominator = 1e-8

// Target is the training target of prediction p for data x0 and noise eps at (alpha, sigma):
// eps → eps, x0 → x0, v → alpha·eps − sigma·x0. x0, eps: [B, H, W, C]; alpha, sigma: broadcastable.
func (p Prediction) Target(x0, eps, alpha, sigma *Node) *Node {
	switch p {
	case PredEps:
		return eps
	case PredX0:
		return x0
	case PredV:
		return Sub(Mul(alpha, eps), Mul(sigma, x0))
	}
	panic(fmt.Sprintf("unknown prediction %q", p))
}

// X0Eps reads a prediction back as (x̂0, ε̂) given x_t = alpha·x0 + sigma·eps. For v:
// x0 = (alpha·x_t − sigma·v)/(alpha²+sigma²), eps = (sigma·x_t + alpha·v)/(alpha²+sigma²),
// exact for any schedule. All tensors [B, H, W, C] or broadcastable.
func (p Prediction) X0Eps(xt, pred, alpha, sigma *Node) (x0, eps *Node) {
	switch p {
	case PredEps:
		return Div(Sub(xt, Mul(sigma, pred)), MaxScalar(alpha, safeDenominator)), pred
	case PredX0:
		return pred, Div(Sub(xt, Mul(alpha, pred)), MaxScalar(sigma, safeDenominator))
	case PredV:
		n := Add(Square(alpha), Square(sigma))
		return Div(Sub(Mul(alpha, xt), Mul(sigma, pred)), n), Div(Add(Mul(sigma, xt), Mul(alpha, pred)), n)
	}
	panic(fmt.Sprintf("unknown prediction %q", p))
}

// Derivatives returns dα/dt and dσ/dt at host time t in (0, 1]: the probability-flow ODE of any of
// these schedules is dx/dt = α'(t)·x̂0 + σ'(t)·ε̂ (the conditional path x_t = α·x0 + σ·ε
// differentiated in t, averaged over the posterior). For linear, σ' diverges at t → 0.
func (s Schedule) Derivatives(t float64) (dAlpha, dSigma float64) {
	da, db := s.baseDerivatives(t)
	if !s.shifted() {
		return da, db
	}
	// α' = a/d, σ' = s·b/d: d(a/d)/dt = a_t/d − a·d_t/d², with d_t = (a·a_t + s²·b·b_t)/d (VP) or
	// a_t + s·b_t (flow).
	a, b := s.base(t)
	d := s.shiftNorm(a, b)
	var dd float64
	if s.Kind == "flow" {
		dd = da + s.Shift*db
	} else {
		dd = (a*da + s.Shift*s.Shift*b*db) / d
	}
	return da/d - a*dd/(d*d), s.Shift * (db/d - b*dd/(d*d))
}

// baseDerivatives is the unshifted Derivatives.
func (s Schedule) baseDerivatives(t float64) (dAlpha, dSigma float64) {
	switch s.Kind {
	case "cosine":
		return -math.Pi / 2 * math.Sin(math.Pi/2*t), math.Pi / 2 * math.Cos(math.Pi/2*t)
	case "linear":
		alpha, sigma := s.base(t)
		dAlpha = alpha * (-0.5*t*(s.BetaMax-s.BetaMin) - 0.5*s.BetaMin)
		return dAlpha, -alpha * dAlpha / sigma
	case "flow":
		return -1, 1
	}
	panic(fmt.Sprintf("unknown schedule %q", s.Kind))
}

// LogSNR is λ(t) = log(α²/σ²): +Inf at t = 0, −Inf where α = 0. It decreases in t.
func (s Schedule) LogSNR(t float64) float64 {
	alpha, sigma := s.AlphaSigma(t)
	return 2 * (math.Log(alpha) - math.Log(sigma))
}

// SigmaBar is σ/α, the noise level of EDM (Karras et al., arXiv 2206.00364) in the coordinates
// x/α = x0 + (σ/α)·ε; +Inf where α = 0.
func (s Schedule) SigmaBar(t float64) float64 {
	return math.Exp(-s.LogSNR(t) / 2)
}

// TimeOfLogSNR inverts LogSNR on [0, tMax] by bisection (λ is monotone); λ beyond the range of the
// schedule clamps to the ends.
func (s Schedule) TimeOfLogSNR(lambda, tMax float64) float64 {
	lo, hi := 0.0, tMax
	if lambda <= s.LogSNR(hi) {
		return hi
	}
	for range 200 {
		mid := (lo + hi) / 2
		if s.LogSNR(mid) > lambda {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo < 1e-15 {
			break
		}
	}
	return (lo + hi) / 2
}
