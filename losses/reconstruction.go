package losses

import (
	. "github.com/gomlx/gomlx/core/graph"
)

// PseudoHuber is the pseudo-Huber distance per example (Charbonnier; as used for consistency
// training by Song & Dhariwal, arXiv 2310.14189 §3.3, with the squared norm averaged over pixels):
// sqrt(mean (pred − target)² + c²) − c. It grows like the RMS error for errors ≫ c and like
// mean²/(2c) below, so a few bad pixels weigh less than under MSE. pred, target: [B, ...] → [B].
func PseudoHuber(pred, target *Node, c float64) *Node {
	return AddScalar(Sqrt(AddScalar(MeanSquared(pred, target), c*c)), -c)
}

// ShiftedReconstruction is Imagine Flash's shifted reconstruction loss (Kohler et al., arXiv
// 2405.05224, eq. 7) per example: the distance between the student's x̂0 and the teacher's
// stop-gradient reconstruction of it from the shifted time τ. distance is "mse" or
// "pseudo_huber" (with c). x0hat, target: [B, H, W, C] → [B].
func ShiftedReconstruction(x0hat, target *Node, distance string, c float64) *Node {
	target = StopGradient(target)
	if distance == "pseudo_huber" {
		return PseudoHuber(x0hat, target, c)
	}
	return MeanSquared(x0hat, target)
}

// FeatureMatching is the per-example feature-matching loss between a frozen network's feature maps
// of generated and target images (SDXS, arXiv 2403.16627 §3.3, eq. 5): mean (f_fake − f_real)²
// over every axis but the batch axis, divided by the batch mean of f_real² (held fixed) so that taps
// of different scale weigh alike. fake, real: any shape with the batch at batchAxis → [B].
func FeatureMatching(fake, real *Node, batchAxis int) *Node {
	var axes []int
	for i := range fake.Rank() {
		if i != batchAxis {
			axes = append(axes, i)
		}
	}
	scale := StopGradient(MaxScalar(ReduceAllMean(Square(real)), 1e-6))
	return Div(ReduceMean(Square(Sub(fake, real)), axes...), scale)
}
