package sampling

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// GuidedX0Eps evaluates the denoiser with classifier-free guidance (Ho & Salimans, arXiv 2207.12598,
// eq. 6 in prediction space): the conditional and null batches run as one batch of 2B, and
// pred = pred_null + w·(pred_cond − pred_null); w = 1 skips the null half at build time only if
// guide is false. x: [B, H, W, C], t: [B], cond: [B] int32, w: scalar → x̂0, ε̂: [B, H, W, C].
func GuidedX0Eps(d *models.Denoiser, scope *model.Scope, x, t, cond, w *Node, nullClass int, guide bool) (x0, eps *Node) {
	var pred *Node
	if guide {
		bsz := x.Shape().Dimensions[0]
		null := AddScalar(ZerosLike(cond), nullClass)
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

// DDIMStep is the deterministic DDIM update (Song et al., arXiv 2010.02502, eq. 12 with eta=0) from
// time t to s < t: x_s = alpha(s)·x̂0 + sigma(s)·ε̂. With clip, x̂0 is clamped to [-1, 1] and ε̂
// recomputed from it. x, x0, eps: [B, H, W, C]; t, s: [B].
func DDIMStep(sched models.Schedule, x, x0, eps, t, s *Node, clip bool) *Node {
	if clip {
		x0 = ClipScalar(x0, -1, 1)
		alphaT, sigmaT := sched.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
		eps = Div(Sub(x, Mul(alphaT, x0)), MaxScalar(sigmaT, 1e-8))
	}
	alphaS, sigmaS := sched.AlphaSigmaNode(ExpandAxes(s, 1, 2, 3))
	return Add(Mul(alphaS, x0), Mul(sigmaS, eps))
}
