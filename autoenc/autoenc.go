// Package autoenc trains the first stage of latent diffusion: the KL-regularized autoencoder of
// models.Autoencoder (Rombach et al., arXiv 2112.10752 §3 and App. G), as a trainer.Method of a run
// whose model.arch is autoencoder (`fewstep train -config fashion-autoencoder`).
package autoenc

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/losses"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// Scopes of the autoencoder's halves under the trained (and EMA) scope.
const (
	EncoderScope = "encoder"
	DecoderScope = "decoder"
)

// Method trains an autoencoder. Per example (LDM App. G, with pixel means instead of sums so that
// the weights read per pixel):
//
//	L = l1_weight·mean|x − x̂| + ssim_weight·(1 − SSIM(x, x̂)) + kl_weight·KL(q(z|x) ‖ N(0, I))/(H·W·C)
//	    + [step ≥ disc_start] · disc_weight · λ · mean(−D(x̂))
//
// with x̂ = Dec(z), z = μ + σ·ε the reparameterized posterior sample, D a patch discriminator trained
// with the hinge loss on (x, x̂) from disc_start on, and λ = ‖∇_W L_rec‖ / (‖∇_W L_G‖ + 1e-4) (LDM's
// adaptive weight: the ratio of gradient norms at the decoder's last layer W, clamped to
// [0, 1e4], not differentiated). Terms logged: l1, ssim, kl, psnr (of x̂ against x in [−1, 1]),
// and with the discriminator g_adv, lambda, d_loss, d_acc.
type Method struct {
	cfg      models.AutoencoderConfig
	ae       *models.Autoencoder
	disc     *models.Builder
	gStep    *trainer.Step
	dStep    *trainer.Step
	recon    *model.Exec // EMA reconstruction of the grid images
	last     *tensors.Tensor
	channels int
}

// New returns the trainer.MethodFactory of an autoencoder run.
func New(cfg models.AutoencoderConfig) trainer.MethodFactory {
	return func(backend compute.Backend, store *model.Store, job trainer.Job, resumed bool) (trainer.Method, error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if side := job.Data.ImageSize; side%cfg.Factor() != 0 {
			return nil, fmt.Errorf("autoencoder.channel_mult: factor %d does not divide data.image_size %d", cfg.Factor(), side)
		}
		ae, err := models.NewAutoencoder(cfg, job.Seed)
		if err != nil {
			return nil, err
		}
		m := &Method{cfg: cfg, ae: ae, disc: &models.Builder{Seed: job.Seed ^ 0xd15c}, channels: job.Data.Channels}
		if m.gStep, m.dStep, err = adversarialSteps(backend, store, job.Trainer, cfg.DiscLR, m.aeLoss, m.discLoss); err != nil {
			return nil, err
		}
		m.recon, err = model.NewExec(backend, store, func(root *model.Scope, x *Node) *Node {
			return m.reconstruct(root.In(trainer.EMAScope), x, nil)
		})
		return m, err
	}
}

// reconstruct is Dec(z) with z the posterior sample (eps: [B, h, w, z_c]) or, eps nil, its mean.
// It returns x̂ and, through the optional out pointers, the posterior.
func (m *Method) reconstruct(scope *model.Scope, x, eps *Node, post ...*[2]*Node) *Node {
	mean, logVar := m.ae.Encode(scope.In(EncoderScope), x)
	z := mean
	if eps != nil {
		z = models.SamplePosterior(mean, logVar, eps)
	}
	if len(post) > 0 {
		*post[0] = [2]*Node{mean, logVar}
	}
	return m.ae.Decode(scope.In(DecoderScope), z, m.channels)
}

// aeLoss is the autoencoder's step loss; inputs: x [B, H, W, C], eps [B, h, w, z_c], discOn [].
func (m *Method) aeLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x, eps, discOn := in[0], in[1], in[2]
	scope := root.In(trainer.ModelScope)
	var post [2]*Node
	xr := m.reconstruct(scope, x, eps, &post)
	d := x.Shape().Dimensions
	pixels := float64(d[1] * d[2] * d[3])
	l1 := ReduceAllMean(Abs(Sub(xr, x)))
	ssim := ReduceAllMean(losses.MultiScaleSSIMLoss(xr, x, losses.DefaultSSIMConfig()))
	kl := DivScalar(ReduceAllMean(models.KL(post[0], post[1])), pixels)
	rec := Add(MulScalar(l1, m.cfg.L1Weight), MulScalar(ssim, m.cfg.SSIMWeight))
	loss := Add(rec, MulScalar(kl, m.cfg.KLWeight))
	mse := ReduceAllMean(Square(Sub(xr, x)))
	psnr := MulScalar(Log(Div(Const(x.Graph(), float32(4)), Max(mse, Const(x.Graph(), float32(1e-10))))), 10/math.Ln10) // peak-to-peak 2
	terms := map[string]*Node{"l1": l1, "ssim": ssim, "kl": kl, "psnr": psnr}
	if m.cfg.DiscStart >= 0 {
		g := ReduceAllMean(Neg(m.logits(root.In(trainer.DiscScope), xr)))
		w := m.lastLayer(scope, x.Graph())
		gRec, gAdv := Gradient(rec, w)[0], Gradient(g, w)[0]
		lambda := losses.AdaptiveWeight(gRec, gAdv)
		loss = Add(loss, Mul(discOn, MulScalar(Mul(lambda, g), m.cfg.DiscWeight)))
		terms["g_adv"], terms["lambda"] = g, lambda
	}
	return loss, terms
}

// lastLayer is the value node of the decoder's output conv kernel (LDM's adaptive weight reads
// the gradients there).
func (m *Method) lastLayer(scope *model.Scope, g *Graph) *Node {
	path := model.JoinPath(scope.Scope(), DecoderScope, "conv_out", "kernel")
	v := scope.Store().GetVariable(path)
	if v == nil {
		panic(fmt.Errorf("autoencoder: no variable %s (the decoder's output conv)", path))
	}
	return v.NodeValue(g)
}

// discLoss is the hinge loss of the patch discriminator on real x and the (stopped) posterior-sample
// reconstruction; inputs as aeLoss. Terms: d_acc (fraction of patches classified right).
func (m *Method) discLoss(root *model.Scope, in []*Node) (*Node, map[string]*Node) {
	x, eps := in[0], in[1]
	xr := StopGradient(m.reconstruct(root.In(trainer.ModelScope), x, eps))
	disc := root.In(trainer.DiscScope)
	both := m.logits(disc, Concatenate([]*Node{x, xr}, 0)) // one pass: the heads' scope is built once
	bsz := x.Shape().Dimensions[0]
	return hingeDisc(Slice(both, AxisRange(0, bsz)), Slice(both, AxisRange(bsz, 2*bsz)))
}

// logits is the patch discriminator of the autoencoder's config (PatchLogits).
func (m *Method) logits(scope *model.Scope, x *Node) *Node {
	return PatchLogits(m.disc, scope, x, m.cfg.DiscChannels, m.cfg.DiscLayers)
}

// PatchLogits is a patch discriminator (after pix2pix's PatchGAN, Isola et al. arXiv 1611.07004,
// as in LDM's first stage): layers 3×3 stride-2 convs with channels·2^i channels, GroupNorm (after
// the first) and SiLU, then a 1×1 conv: one logit per patch. x: [B, H, W, C] → [B, N].
func PatchLogits(b *models.Builder, scope *model.Scope, x *Node, channels, layers int) *Node {
	h := TransposeAllAxes(x, 3, 0, 1, 2)
	for i := range layers {
		s := scope.In("layer%d", i)
		h = b.Conv2D(s.In("conv"), h, channels<<i, 3, 2, models.ConvAuto, models.InitFanIn)
		if i > 0 {
			h = b.GroupNorm(s.In("norm"), h, min(8, (channels<<i)/4))
		}
		h = models.SiLU(h)
	}
	out := Squeeze(b.Conv2D(scope.In("out"), h, 1, 1, 1, models.ConvAuto, models.InitFanIn), 0) // [B, h', w']
	return Reshape(out, out.Shape().Dimensions[0], -1)
}

// hingeDisc is the discriminator's hinge loss on real and fake logits [B, N] and its accuracy
// (fraction of patches classified right), the term d_acc.
func hingeDisc(real, fake *Node) (*Node, map[string]*Node) {
	loss := ReduceAllMean(losses.HingeDiscriminator(real, fake))
	right := Add(ReduceAllMean(ConvertDType(GreaterThan(real, ZerosLike(real)), real.DType())),
		ReduceAllMean(ConvertDType(LessThan(fake, ZerosLike(fake)), fake.DType())))
	return loss, map[string]*Node{"d_acc": MulScalar(right, 0.5)}
}

// Step runs one autoencoder update (and, from disc_start on, one discriminator update first).
func (m *Method) Step(step int, b *trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	f, zc := m.cfg.Factor(), m.cfg.LatentChannels
	eps := make([]float32, b.B*(b.H/f)*(b.W/f)*zc)
	for i := range eps {
		eps[i] = float32(rng.NormFloat64())
	}
	x := tensors.FromFlatDataAndDimensions(b.X0, b.B, b.H, b.W, b.C)
	m.last = x
	et := tensors.FromFlatDataAndDimensions(eps, b.B, b.H/f, b.W/f, zc)
	return adversarialStep(m.dStep, m.gStep, step, m.cfg.DiscStart, x, et)
}

// adversarialSteps builds a generator's update (the trained scope, with EMA) and its patch
// discriminator's (the discriminator scope, AdamW at discLR, no warm-up, no EMA).
func adversarialSteps(backend compute.Backend, store *model.Store, tc trainer.Config, discLR float64, gLoss, dLoss trainer.TermsFn) (g, d *trainer.Step, err error) {
	if g, err = trainer.NewTermsStep(backend, store, tc, trainer.ModelScope, true, gLoss); err != nil {
		return nil, nil, err
	}
	tc.LR, tc.WarmupSteps, tc.EMADecay = discLR, 0, 0
	d, err = trainer.NewTermsStep(backend, store, tc, trainer.DiscScope, false, dLoss)
	return g, d, err
}

// adversarialStep runs, from step start on (start >= 0), one discriminator update on inputs and
// then the generator's update on inputs plus the scalar "discriminator on" (1 or 0), and merges
// the discriminator's loss and accuracy into the result's terms (d_loss, d_acc).
func adversarialStep(dStep, gStep *trainer.Step, step, start int, inputs ...*tensors.Tensor) (trainer.StepResult, error) {
	on := start >= 0 && step >= start
	var dres trainer.StepResult
	if on {
		var err error
		if dres, err = dStep.RunInputs(step-start, inputs...); err != nil {
			return trainer.StepResult{}, err
		}
	}
	res, err := gStep.RunInputs(step, append(inputs, tensors.FromScalar(float32(map[bool]float64{true: 1}[on])))...)
	if err != nil {
		return res, err
	}
	if on {
		res.Terms["d_loss"], res.Terms["d_acc"] = dres.Loss, dres.Terms["d_acc"]
	}
	return res, nil
}

// topRowGrid writes the first (up to) 8 of the n images top [n, h, w, c] (flattened) over the
// outputs of exec on the first (up to) 8 inputs in [n, …]: a 2-row grid.
func topRowGrid(path string, exec *model.Exec, in *tensors.Tensor, top []float32, h, w, c int) error {
	d := in.Shape().Dimensions
	n := min(8, d[0])
	per := 1
	for _, v := range d[1:] {
		per *= v
	}
	out, err := exec.Call1(tensors.FromFlatDataAndDimensions(tensors.MustCopyFlatData[float32](in)[:n*per], append([]int{n}, d[1:]...)...))
	if err != nil {
		return err
	}
	imgs := append(append([]float32(nil), top[:n*h*w*c]...), tensors.MustCopyFlatData[float32](out)...)
	return sampling.WriteGrid(path, imgs, 2*n, h, w, c, n)
}

// WriteGrid writes the last batch's first (up to) 8 images over their EMA reconstructions from the
// posterior mean: a 2-row grid (trainer.GridWriter).
func (m *Method) WriteGrid(path string) error {
	if m.last == nil {
		return fmt.Errorf("autoencoder grid: no batch yet")
	}
	d := m.last.Shape().Dimensions
	if err := topRowGrid(path, m.recon, m.last, tensors.MustCopyFlatData[float32](m.last), d[1], d[2], d[3]); err != nil {
		return fmt.Errorf("autoencoder grid: %w", err)
	}
	return nil
}

// Reconstructor reconstructs images with trained weights (under /model in store, e.g. a run's
// EMA weights copied there by trainer.InitWeights) from the posterior mean.
type Reconstructor struct {
	exec     *model.Exec
	channels int
}

// NewReconstructor builds the reconstruction graph of cfg over store's /model weights (all of which
// must exist: a missing variable is an error naming it).
func NewReconstructor(backend compute.Backend, store *model.Store, cfg models.AutoencoderConfig, channels int) (*Reconstructor, error) {
	ae, err := models.NewAutoencoder(cfg, 0)
	if err != nil {
		return nil, err
	}
	ae.Frozen = true
	m := &Method{cfg: cfg, ae: ae, channels: channels}
	exec, err := model.NewExec(backend, store, func(root *model.Scope, x *Node) *Node {
		return m.reconstruct(root.In(trainer.ModelScope), x, nil)
	})
	if err != nil {
		return nil, err
	}
	return &Reconstructor{exec: exec, channels: channels}, nil
}

// Reconstruct maps images [n, h, w, c] (flattened) to their reconstructions, batch images at a time.
func (r *Reconstructor) Reconstruct(imgs []float32, n, h, w, c, batch int) ([]float32, error) {
	return mapBatches(r.exec, "reconstruct", imgs, n, h, w, c, batch)
}

// PSNR is the mean over images of 10·log10(4 / MSE) (dB; images in [−1, 1], peak-to-peak 2).
func PSNR(a, b []float32, n int) float64 {
	per := len(a) / n
	var sum float64
	for i := range n {
		var se float64
		for j := i * per; j < (i+1)*per; j++ {
			d := float64(a[j] - b[j])
			se += d * d
		}
		sum += 10 * math.Log10(4/max(se/float64(per), 1e-12))
	}
	return sum / float64(n)
}

// MeanSSIM is the mean over images of SSIM(a_i, b_i) (losses.SSIM, Wang et al. 2004's constants
// for images in [−1, 1]). a, b: [n, h, w, c] flattened.
func MeanSSIM(backend compute.Backend, a, b []float32, n, h, w, c, batch int) (float64, error) {
	exec, err := model.NewExec(backend, model.NewStore(), func(_ *model.Scope, x, y *Node) *Node {
		return losses.SSIM(x, y, losses.DefaultSSIMConfig())
	})
	if err != nil {
		return 0, err
	}
	per := h * w * c
	var sum float64
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		res, err := exec.Call1(tensors.FromFlatDataAndDimensions(a[start*per:end*per], end-start, h, w, c),
			tensors.FromFlatDataAndDimensions(b[start*per:end*per], end-start, h, w, c))
		if err != nil {
			return 0, err
		}
		for _, v := range tensors.MustCopyFlatData[float32](res) {
			sum += float64(v)
		}
	}
	return sum / float64(n), nil
}

// NewEncoder returns a data.LatentEncoder over store's /model weights: the posterior mean of each
// image, [n, H/f, W/f, z_c] flattened, encoded batch images at a time. With sample, it returns a
// posterior sample z = μ + exp(½·log σ²)·ε instead, ε drawn from a PCG seeded by (seed, image
// index) — image i counts every image encoded so far, so a file encodes the same on every run.
func NewEncoder(backend compute.Backend, store *model.Store, cfg models.AutoencoderConfig, batch int, sample bool, seed uint64) (func(imgs []float32, n, h, w, c int) ([]float32, error), error) {
	ae, err := models.NewAutoencoder(cfg, 0)
	if err != nil {
		return nil, err
	}
	ae.Frozen = true
	exec, err := model.NewExec(backend, store, func(root *model.Scope, x *Node) *Node {
		mean, logVar := ae.Encode(root.In(trainer.ModelScope).In(EncoderScope), x)
		if !sample {
			return mean
		}
		return Concatenate([]*Node{mean, logVar}, -1) // [B, h, w, 2·z_c]
	})
	if err != nil {
		return nil, err
	}
	index := uint64(0)
	return func(imgs []float32, n, h, w, c int) ([]float32, error) {
		out, err := mapBatches(exec, "encode", imgs, n, h, w, c, batch)
		if err != nil || !sample {
			return out, err
		}
		zc := cfg.LatentChannels
		per := len(out) / n / (2 * zc) // latent positions per image
		z := make([]float32, 0, n*per*zc)
		for i := range n {
			rng := rand.New(rand.NewPCG(seed, index))
			index++
			for p := range per {
				row := out[(i*per+p)*2*zc : (i*per+p+1)*2*zc]
				for k := range zc {
					z = append(z, float32(float64(row[k])+math.Exp(0.5*float64(row[zc+k]))*rng.NormFloat64()))
				}
			}
		}
		return z, nil
	}, nil
}

// mapBatches runs exec on images [n, h, w, c] (flattened) batch images at a time and concatenates
// its outputs; what names the operation in errors.
func mapBatches(exec *model.Exec, what string, imgs []float32, n, h, w, c, batch int) ([]float32, error) {
	per := h * w * c
	var out []float32
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		res, err := exec.Call1(tensors.FromFlatDataAndDimensions(imgs[start*per:end*per], end-start, h, w, c))
		if err != nil {
			return nil, fmt.Errorf("%s images %d–%d: %w", what, start, end-1, err)
		}
		out = append(out, tensors.MustCopyFlatData[float32](res)...)
	}
	return out, nil
}
