package sampling

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// GuidedX0Eps evaluates the denoiser with classifier-free guidance (Ho & Salimans, arXiv 2207.12598,
// eq. 6 in prediction space): the conditional and null batches run as one batch of 2B, and
// pred = pred_null + w·(pred_cond − pred_null); guide=false builds the conditional model alone.
// x: [B, H, W, C], t: [B], cond: [B] int32, w: scalar or [B, 1, 1, 1] → x̂0, ε̂: [B, H, W, C].
func GuidedX0Eps(d *models.Denoiser, scope *model.Scope, x, t, cond, w *Node, nullClass int, guide bool) (x0, eps *Node) {
	var pred *Node
	if guide {
		bsz := x.Shape().Dimensions[0]
		null := models.NullCond(cond, nullClass)
		both := d.Net(scope, Concatenate([]*Node{x, x}, 0), Concatenate([]*Node{t, t}, 0), Concatenate([]*Node{cond, null}, 0))
		c := Slice(both, AxisRange(0, bsz))
		u := Slice(both, AxisRange(bsz, 2*bsz))
		pred = Add(u, Mul(w, Sub(c, u)))
	} else {
		pred = d.Net(scope, x, t, cond)
	}
	alpha, sigma := d.Schedule.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	return d.Prediction.X0Eps(x, pred, alpha, sigma)
}

// GuidanceScale is the guidance scale of each example at its own time t: w where t lies in the
// guidance interval [lo, hi] (Kynkäänniemi et al., arXiv 2404.07724; empty interval: everywhere),
// 1 (the conditional model alone) elsewhere. For solvers whose examples sit at different times,
// such as a distillation teacher's solve; the samplers decide per step on the host (guidedAt).
// t: [B] → [B, 1, 1, 1].
func GuidanceScale(t *Node, w float64, interval []float64) *Node {
	g := t.Graph()
	scale := BroadcastToShape(Scalar(g, t.DType(), w), t.Shape())
	if len(interval) == 2 {
		in := LogicalAnd(GreaterOrEqual(t, Scalar(g, t.DType(), interval[0])), LessOrEqual(t, Scalar(g, t.DType(), interval[1])))
		scale = Where(in, scale, OnesLike(t))
	}
	return ExpandAxes(scale, 1, 2, 3)
}

// ClipAndCorrect post-processes the denoiser's (x̂0, ε̂) at (x, t) for a solver step:
//   - clip: x̂0 is clamped to [-1, 1] and ε̂ = (x − α·x̂0)/σ recomputed from it;
//   - noise correction (Imagine Flash, arXiv 2405.05224, §3.3): where nc = 1 (the first step, at
//     t = T, where x is the initial noise x_T), ε̂ is replaced by x_T itself; x̂0 keeps the model's
//     prediction. The update then moves along the true noise instead of the model's poor estimate
//     of it (an eps-model at t ≈ T sees almost no signal).
//
// x, x0, eps: [B, H, W, C]; t: [B]; nc: scalar float 0 or 1.
func ClipAndCorrect(sched models.Schedule, x, x0, eps, t, nc *Node, clip bool) (*Node, *Node) {
	if clip {
		x0 = ClipScalar(x0, -1, 1)
		alphaT, sigmaT := sched.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
		eps = Div(Sub(x, Mul(alphaT, x0)), MaxScalar(sigmaT, 1e-8))
	}
	eps = Add(eps, Mul(nc, Sub(x, eps)))
	return x0, eps
}

// CombineStep is the update every solver here is made of: x' = c0·x + c1·x̂0 + c2·ε̂ + c3·aux + c4·z,
// with coefficients computed on the host from the step's times (see coefficients.go) and passed in
// as a tensor, so one compiled executor serves every step. x, x0, eps, aux, z: [B, H, W, C];
// coef: [5].
func CombineStep(x, x0, eps, aux, z, coef *Node) *Node {
	c := func(i int) *Node { return Reshape(Slice(coef, AxisElem(i))) } // scalar
	out := Mul(c(0), x)
	out = Add(out, Mul(c(1), x0))
	out = Add(out, Mul(c(2), eps))
	out = Add(out, Mul(c(3), aux))
	return Add(out, Mul(c(4), z))
}

// DDIMStep is the deterministic DDIM update (Song et al., arXiv 2010.02502, eq. 12 with eta=0) from
// time t to s < t as a graph function of the times, for callers that stay inside one graph (teacher
// solves in distillation): x_s = alpha(s)·x̂0 + sigma(s)·ε̂. With clip, x̂0 is clamped to [-1, 1]
// and ε̂ recomputed from it. x, x0, eps: [B, H, W, C]; t, s: [B].
func DDIMStep(sched models.Schedule, x, x0, eps, t, s *Node, clip bool) *Node {
	if clip {
		x0 = ClipScalar(x0, -1, 1)
		alphaT, sigmaT := sched.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
		eps = Div(Sub(x, Mul(alphaT, x0)), MaxScalar(sigmaT, 1e-8))
	}
	alphaS, sigmaS := sched.AlphaSigmaNode(ExpandAxes(s, 1, 2, 3))
	return Add(Mul(alphaS, x0), Mul(sigmaS, eps))
}
