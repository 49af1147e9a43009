package sampling

import (
	"math"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// gauss2 is 2-D Gaussian data per pixel (the channel axis holds the 2 coordinates):
// x0 ~ N(mu + cond·shift, Q·diag(lam)·Qᵀ) with Q the rotation by angle theta. Its optimal
// denoiser and probability-flow ODE are closed-form.
type gauss2 struct {
	mu, shift [2]float64
	lam       [2]float64
	theta     float64
}

// rot applies Q (inverse: Qᵀ) to (a, b).
func (g gauss2) rot(a, b float64, inverse bool) (float64, float64) {
	c, s := math.Cos(g.theta), math.Sin(g.theta)
	if inverse {
		s = -s
	}
	return c*a - s*b, s*a + c*b
}

// mean of class cond.
func (g gauss2) mean(cond float64) [2]float64 {
	return [2]float64{g.mu[0] + cond*g.shift[0], g.mu[1] + cond*g.shift[1]}
}

// denoiser is the exact posterior mean E[x0 | x_t] = m + Q·diag(αλ/(α²λ+σ²))·Qᵀ·(x_t − α·m) as an
// x0-prediction network. x: [B, H, W, 2].
func (g gauss2) denoiser(sched models.Schedule) *models.Denoiser {
	net := func(_ *model.Scope, xt, t, cond *Node) *Node {
		alpha, sigma := sched.AlphaSigmaNode(ExpandAxes(t, 1, 2))
		cf := ExpandAxes(ConvertDType(cond, xt.DType()), 1, 2)
		ch := func(i int) *Node { return Squeeze(Slice(xt, AxisRange(), AxisRange(), AxisRange(), AxisElem(i)), 3) }
		m0 := AddScalar(MulScalar(cf, g.shift[0]), g.mu[0])
		m1 := AddScalar(MulScalar(cf, g.shift[1]), g.mu[1])
		y0, y1 := Sub(ch(0), Mul(alpha, m0)), Sub(ch(1), Mul(alpha, m1))
		c, s := math.Cos(g.theta), math.Sin(g.theta)
		p0 := Add(MulScalar(y0, c), MulScalar(y1, s)) // Qᵀ y
		p1 := Sub(MulScalar(y1, c), MulScalar(y0, s))
		k := func(l float64) *Node {
			return Div(MulScalar(alpha, l), Add(MulScalar(Square(alpha), l), Square(sigma)))
		}
		p0, p1 = Mul(p0, k(g.lam[0])), Mul(p1, k(g.lam[1]))
		o0 := Add(m0, Sub(MulScalar(p0, c), MulScalar(p1, s))) // Q p
		o1 := Add(m1, Add(MulScalar(p0, s), MulScalar(p1, c)))
		return Stack([]*Node{o0, o1}, 3)
	}
	return &models.Denoiser{Net: net, Prediction: models.PredX0, Schedule: sched}
}

// flow is the exact probability-flow ODE map from (x, tFrom) to tTo for class cond:
// x(tTo) = α_to·m + V(tTo)^{1/2} V(tFrom)^{−1/2} (x − α_from·m), V(t) = α²Σ + σ²I.
func (g gauss2) flow(sched models.Schedule, x [2]float64, tFrom, tTo, cond float64) [2]float64 {
	af, sf := sched.AlphaSigma(tFrom)
	at, st := sched.AlphaSigma(tTo)
	m := g.mean(cond)
	p0, p1 := g.rot(x[0]-af*m[0], x[1]-af*m[1], true)
	scale := func(l float64) float64 { return math.Sqrt((at*at*l + st*st) / (af*af*l + sf*sf)) }
	p0, p1 = p0*scale(g.lam[0]), p1*scale(g.lam[1])
	o0, o1 := g.rot(p0, p1, false)
	return [2]float64{at*m[0] + o0, at*m[1] + o1}
}
