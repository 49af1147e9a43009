package losses

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
)

// HingeDiscriminator is the hinge loss of a discriminator (Lim & Ye, arXiv 1705.02894; used by LADD,
// arXiv 2403.12015 §3.2): max(0, 1 − D(real)) + max(0, 1 + D(fake)). real, fake: [B] logits → [B].
func HingeDiscriminator(real, fake *Node) *Node { return Add(HingeReal(real), HingeFake(fake)) }

// HingeReal is the real half of HingeDiscriminator: max(0, 1 − D(real)). [B] → [B].
func HingeReal(real *Node) *Node { return activation.Relu(OneMinus(real)) }

// HingeFake is the fake half of HingeDiscriminator: max(0, 1 + D(fake)). [B] → [B].
func HingeFake(fake *Node) *Node { return activation.Relu(AddScalar(fake, 1)) }

// HingeGenerator is the generator side of the hinge loss: −D(fake). fake: [B] → [B].
func HingeGenerator(fake *Node) *Node { return Neg(fake) }

// NonSaturatingGenerator is −log σ(D(fake)) = softplus(−D(fake)) (Goodfellow et al. 2014, §3),
// written stably as max(−z, 0) + log(1 + e^{−|z|}). fake: [B] → [B].
func NonSaturatingGenerator(fake *Node) *Node {
	z := Neg(fake)
	return Add(activation.Relu(z), Log1P(Exp(Neg(Abs(z)))))
}

// AdaptiveWeight is VQGAN's adaptive weight (Esser et al., arXiv 2012.09841, eq. 7; LDM's
// autoencoder, LADD's ladd.adaptive_weight): λ = ‖gRec‖₂ / (‖gAdv‖₂ + 1e-4), clamped to [0, 1e4]
// and not differentiated, with gRec and gAdv the reconstruction (or distillation) and adversarial
// losses' gradients at the generator's last layer.
func AdaptiveWeight(gRec, gAdv *Node) *Node {
	return StopGradient(ClipScalar(Div(l2Norm(gRec), AddScalar(l2Norm(gAdv), 1e-4)), 0, 1e4))
}

// l2Norm is ‖v‖₂ over all elements.
func l2Norm(v *Node) *Node { return Sqrt(ReduceAllSum(Square(v))) }
