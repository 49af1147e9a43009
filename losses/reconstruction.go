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
