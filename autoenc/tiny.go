package autoenc

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// TinyScope is the tiny decoder's scope under the trained (and EMA) scope.
const TinyScope = "tiny_decoder"

// TinyMethod distills SDXS's tiny decoder (Song et al., arXiv 2403.16627 §3.2) from the full
// autoencoder decoder of the run's latent data (model.arch tiny_decoder): per batch of latents z
// (scaled, as the loader gives them), the full decoder's images D(z/s) are the targets and the
// patch discriminator's real images, with the VD loss of models.TinyDecoderConfig. The paper
// samples z from the latent diffusion model; any latent file works (encoded data, or teacher
// samples). Terms logged: l1 (the pooled L1), psnr (of T(z) against D(z) at full resolution),
// and with the discriminator g_adv, d_loss, d_acc.
type TinyMethod struct {
	cfg     models.TinyDecoderConfig
	td      *models.TinyDecoder
	disc    *models.Builder
	full    *sampling.Decoder
	gStep   *trainer.Step
	dStep   *trainer.Step
	grid    *model.Exec // EMA tiny decode of the grid latents
	last    *tensors.Tensor
	lastImg []float32
}

// NewTiny returns the trainer.MethodFactory of a tiny-decoder run; the job's Decoder must be the
// full decoder of its latent data (cmd/fewstep attaches it).
func NewTiny(cfg models.TinyDecoderConfig) trainer.MethodFactory {
	return func(backend compute.Backend, store *model.Store, job trainer.Job, resumed bool) (trainer.Method, error) {
		full, ok := job.Decoder.(*sampling.Decoder)
		if !ok || full == nil {
			return nil, fmt.Errorf("model.arch %s: data.train %s must hold latent rows (fewstep data encode): the tiny decoder learns their full decoder", models.ArchTinyDecoder, job.Data.Train)
		}
		td, err := models.NewTinyDecoder(cfg, job.Seed)
		if err != nil {
			return nil, err
		}
		m := &TinyMethod{cfg: cfg, td: td, disc: &models.Builder{Seed: job.Seed ^ 0xd15c}, full: full}
		if m.gStep, m.dStep, err = adversarialSteps(backend, store, job.Trainer, cfg.DiscLR, m.loss, m.discLoss); err != nil {
			return nil, err
		}
		m.grid, err = model.NewExec(backend, store, func(root *model.Scope, z *Node) *Node {
			return m.decode(root.In(trainer.EMAScope), z)
		})
		return m, err
	}
}

// decode is T(z/s) for scaled latents z [B, h, w, z_c] (the file's channel_norm undone).
func (m *TinyMethod) decode(scope *model.Scope, z *Node) *Node {
	src := m.full.Source
	return m.td.Decode(scope.In(TinyScope), src.Norm.Denormalize(DivScalar(z, m.full.Scale)), src.Autoencoder.Factor(), src.Channels)
}

// AvgPool averages x [B, H, W, C] over k×k blocks: [B, H/k, W/k, C] (k = 1: x).
func AvgPool(x *Node, k int) *Node {
	if k == 1 {
		return x
	}
	d := x.Shape().Dimensions
	if d[1]%k != 0 || d[2]%k != 0 {
		panic(fmt.Errorf("average pooling by %d of a %d×%d image", k, d[1], d[2]))
	}
	return ReduceMean(Reshape(x, d[0], d[1]/k, k, d[2]/k, k, d[3]), 2, 4)
}

// loss is the VD loss; inputs: z [B, h, w, z_c], the full decoder's images [B, H, W, C], ganOn [].
func (m *TinyMethod) loss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	z, target, ganOn := in[0], in[1], in[2]
	xt := m.decode(root.In(trainer.ModelScope), z)
	k := m.cfg.Downsample
	l1 := ReduceAllMean(Abs(Sub(AvgPool(xt, k), AvgPool(target, k))))
	mse := ReduceAllMean(Square(Sub(xt, target)))
	psnr := MulScalar(Log(Div(Const(z.Graph(), float32(4)), Max(mse, Const(z.Graph(), float32(1e-10))))), 10/math.Ln10)
	loss := MulScalar(l1, m.cfg.L1Weight)
	terms := map[string]*Node{"l1": l1, "psnr": psnr}
	if m.cfg.GANStart >= 0 {
		g := ReduceAllMean(Neg(PatchLogits(m.disc, root.In(trainer.DiscScope), xt, m.cfg.DiscChannels, m.cfg.DiscLayers)))
		loss = Add(loss, Mul(ganOn, MulScalar(g, m.cfg.GANWeight)))
		terms["g_adv"] = g
	}
	return loss, terms
}

// discLoss is the patch discriminator's hinge loss: the full decoder's images are real, the tiny
// decoder's (stopped) fake; inputs as loss.
func (m *TinyMethod) discLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	z, target := in[0], in[1]
	xt := StopGradient(m.decode(root.In(trainer.ModelScope), z))
	both := PatchLogits(m.disc, root.In(trainer.DiscScope), Concatenate([]*Node{target, xt}, 0), m.cfg.DiscChannels, m.cfg.DiscLayers)
	bsz := z.Shape().Dimensions[0]
	return hingeDisc(Slice(both, AxisRange(0, bsz)), Slice(both, AxisRange(bsz, 2*bsz)))
}

// Step decodes the batch with the full decoder (the targets), then runs one discriminator update
// (from gan_start on) and one tiny-decoder update.
func (m *TinyMethod) Step(step int, b *trainer.Batch, _ *rand.Rand) (trainer.StepResult, error) {
	target, err := m.full.Decode(b.X0, b.B)
	if err != nil {
		return trainer.StepResult{}, err
	}
	ih, iw, ic := m.full.ImageShape()
	z := tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C)
	x := tensors.FromFlatDataAndDimensions(target, b.B, ih, iw, ic)
	m.last, m.lastImg = z, target
	return adversarialStep(m.dStep, m.gStep, step, m.cfg.GANStart, z, x)
}

// WriteGrid writes the last batch's first (up to) 8 latents decoded by the full decoder over the
// tiny decoder's EMA decodes: a 2-row grid (trainer.GridWriter).
func (m *TinyMethod) WriteGrid(path string) error {
	if m.last == nil {
		return fmt.Errorf("tiny decoder grid: no batch yet")
	}
	h, w, c := m.full.ImageShape()
	if err := topRowGrid(path, m.grid, m.last, m.lastImg, h, w, c); err != nil {
		return fmt.Errorf("tiny decoder grid: %w", err)
	}
	return nil
}
