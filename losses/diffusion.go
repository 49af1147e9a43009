package losses

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// MeanSquared is the per-example mean of (pred − target)² over all non-batch axes.
// pred, target: [B, ...] → [B].
func MeanSquared(pred, target *Node) *Node {
	axes := make([]int, pred.Rank()-1)
	for i := range axes {
		axes[i] = i + 1
	}
	return ReduceMean(Square(Sub(pred, target)), axes...)
}

// Diffusion is the denoising loss of Ho et al. (arXiv 2006.11239, eq. 14, "L_simple") in the
// denoiser's own parameterization: x_t = alpha(t)·x0 + sigma(t)·eps, loss = ‖D(x_t, t, cond) − target‖²
// with target eps, v or x0. x0, eps: [B, H, W, C]; t: [B]; cond: [B] int32 → [B].
func Diffusion(d *models.Denoiser, scope *model.Scope, x0, eps, t, cond *Node) *Node {
	alpha, sigma := d.Schedule.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	xt := Add(Mul(alpha, x0), Mul(sigma, eps))
	pred := d.Net(scope, xt, t, cond)
	return MeanSquared(pred, d.Prediction.Target(x0, eps, alpha, sigma))
}
