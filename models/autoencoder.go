package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// AutoencoderConfig is the `autoencoder:` section: the KL-regularized convolutional autoencoder of
// latent diffusion (Rombach et al., arXiv 2112.10752 §3, App. G "KL-reg"), sized for small images.
// The downsampling factor f = 2^(len(ChannelMult)−1).
type AutoencoderConfig struct {
	// Channels is the first level's width; level l has Channels·ChannelMult[l].
	Channels int `mapstructure:"channels"`
	// ChannelMult lists the levels; every level but the last halves the resolution (3 levels: f = 4).
	ChannelMult []int `mapstructure:"channel_mult"`
	// NumResBlocks is the residual blocks per level (encoder and decoder).
	NumResBlocks int `mapstructure:"num_res_blocks"`
	// LatentChannels is the latent's channel count z_c (4 as in LDM's f4/f8 models).
	LatentChannels int `mapstructure:"latent_channels"`
	// Groups is the GroupNorm group count (divides every level's width).
	Groups int `mapstructure:"groups"`

	// Training (model.arch autoencoder; LDM App. G): loss = l1_weight·|x − x̂| +
	// ssim_weight·(1 − MS-SSIM) + kl_weight·KL, plus, from disc_start on, the patch
	// discriminator's generator term with LDM's adaptive weight times disc_weight.
	L1Weight   float64 `mapstructure:"l1_weight"`
	SSIMWeight float64 `mapstructure:"ssim_weight"`
	KLWeight   float64 `mapstructure:"kl_weight"`
	// DiscStart is the step at which the discriminator and its generator term switch on (< 0: never).
	DiscStart int `mapstructure:"disc_start"`
	// DiscWeight scales the adaptive weight of the generator term.
	DiscWeight float64 `mapstructure:"disc_weight"`
	// DiscChannels and DiscLayers size the patch discriminator: DiscLayers stride-2 3×3 convs of
	// DiscChannels·2^i channels (GroupNorm, SiLU), then a 1×1 conv to one logit per patch.
	DiscChannels int `mapstructure:"disc_channels"`
	DiscLayers   int `mapstructure:"disc_layers"`
	// DiscLR is the discriminator's learning rate (AdamW; the autoencoder's is trainer.lr).
	DiscLR float64 `mapstructure:"disc_lr"`
}

// DefaultAutoencoderConfig is an f = 4, 4-channel autoencoder with widths 32/64/64.
func DefaultAutoencoderConfig() AutoencoderConfig {
	return AutoencoderConfig{Channels: 32, ChannelMult: []int{1, 2, 2}, NumResBlocks: 1, LatentChannels: 4, Groups: 8,
		L1Weight: 1, SSIMWeight: 0.2, KLWeight: 1e-6, DiscStart: -1, DiscWeight: 0.5, DiscChannels: 32, DiscLayers: 2, DiscLR: 2e-4}
}

// Factor is the spatial downsampling factor f.
func (c AutoencoderConfig) Factor() int { return 1 << (len(c.ChannelMult) - 1) }

// Validate checks every key; errors name it as "autoencoder.<key>".
func (c AutoencoderConfig) Validate() error {
	for _, kv := range []struct {
		key string
		v   int
	}{{"channels", c.Channels}, {"num_res_blocks", c.NumResBlocks}, {"latent_channels", c.LatentChannels}, {"groups", c.Groups}} {
		if kv.v <= 0 {
			return fmt.Errorf("autoencoder.%s: must be positive, got %d", kv.key, kv.v)
		}
	}
	if len(c.ChannelMult) == 0 {
		return fmt.Errorf("autoencoder.channel_mult: needs at least one level")
	}
	for _, kv := range []struct {
		key string
		v   float64
	}{{"l1_weight", c.L1Weight}, {"ssim_weight", c.SSIMWeight}, {"kl_weight", c.KLWeight}, {"disc_weight", c.DiscWeight}, {"disc_lr", c.DiscLR}} {
		if kv.v < 0 {
			return fmt.Errorf("autoencoder.%s: must be >= 0, got %g", kv.key, kv.v)
		}
	}
	if c.DiscStart >= 0 && (c.DiscChannels <= 0 || c.DiscLayers <= 0) {
		return fmt.Errorf("autoencoder.disc_channels, disc_layers: must be positive with disc_start %d", c.DiscStart)
	}
	for i, m := range c.ChannelMult {
		if m <= 0 || (m*c.Channels)%c.Groups != 0 {
			return fmt.Errorf("autoencoder.channel_mult[%d]: %d·channels must be positive and divisible by groups %d", i, m, c.Groups)
		}
	}
	return nil
}

// Autoencoder builds the encoder and decoder of an AutoencoderConfig (channels-first inside, as the
// U-Net). Encoder: conv3×3 → per level NumResBlocks residual blocks, then a stride-2 conv (all but
// the last level) → middle residual block → GroupNorm, SiLU, conv3×3 to 2·z_c channels (posterior
// mean and log-variance). Decoder: the mirror image, with nearest-neighbour 2× upsampling + conv.
type Autoencoder struct {
	Cfg AutoencoderConfig
	*Builder
}

// NewAutoencoder validates cfg and returns an autoencoder whose missing variables are initialized
// from seed.
func NewAutoencoder(cfg AutoencoderConfig, seed uint64) (*Autoencoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Autoencoder{Cfg: cfg, Builder: &Builder{Seed: seed}}, nil
}

// Encode maps images x: [B, H, W, C] in [−1, 1] to the diagonal Gaussian posterior q(z|x): mean and
// log-variance, each [B, H/f, W/f, z_c]; the log-variance is clamped to [−30, 20] as in LDM.
func (a *Autoencoder) Encode(scope *model.Scope, x *Node) (mean, logVar *Node) {
	cfg := a.Cfg
	if side := x.Shape().Dimensions[1]; side%cfg.Factor() != 0 || x.Shape().Dimensions[2]%cfg.Factor() != 0 {
		panic(fmt.Errorf("autoencoder: image %v not divisible by the factor %d", x.Shape().Dimensions[1:3], cfg.Factor()))
	}
	h := a.Conv2D(scope.In("conv_in"), TransposeAllAxes(x, 3, 0, 1, 2), cfg.Channels, 3, 1, ConvAuto, InitFanIn)
	last := len(cfg.ChannelMult) - 1
	for l, m := range cfg.ChannelMult {
		s := scope.In("down%d", l)
		for i := range cfg.NumResBlocks {
			h = a.aeRes(s.In("res%d", i), h, m*cfg.Channels)
		}
		if l < last {
			h = a.Conv2D(s.In("downsample"), h, m*cfg.Channels, 3, 2, ConvAuto, InitFanIn)
		}
	}
	h = a.aeRes(scope.In("mid"), h, cfg.ChannelMult[last]*cfg.Channels)
	h = SiLU(a.GroupNorm(scope.In("norm_out"), h, cfg.Groups))
	h = a.Conv2D(scope.In("conv_out"), h, 2*cfg.LatentChannels, 3, 1, ConvAuto, InitFanIn)
	z := TransposeAllAxes(h, 1, 2, 3, 0) // [B, h, w, 2·z_c]
	zc := cfg.LatentChannels
	mean = Slice(z, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, zc))
	logVar = ClipScalar(Slice(z, AxisRange(), AxisRange(), AxisRange(), AxisRange(zc, 2*zc)), -30, 20)
	return mean, logVar
}

// Decode maps latents z: [B, h, w, z_c] to images [B, h·f, w·f, channels] (unbounded; the data
// range is [−1, 1]).
func (a *Autoencoder) Decode(scope *model.Scope, z *Node, channels int) *Node {
	cfg := a.Cfg
	last := len(cfg.ChannelMult) - 1
	h := a.Conv2D(scope.In("conv_in"), TransposeAllAxes(z, 3, 0, 1, 2), cfg.ChannelMult[last]*cfg.Channels, 3, 1, ConvAuto, InitFanIn)
	h = a.aeRes(scope.In("mid"), h, cfg.ChannelMult[last]*cfg.Channels)
	for l := last; l >= 0; l-- {
		s := scope.In("up%d", l)
		for i := range cfg.NumResBlocks {
			h = a.aeRes(s.In("res%d", i), h, cfg.ChannelMult[l]*cfg.Channels)
		}
		if l > 0 {
			h = a.UpsampleConv2D(s.In("upsample"), h, cfg.ChannelMult[l]*cfg.Channels, ConvAuto, InitFanIn)
		}
	}
	h = SiLU(a.GroupNorm(scope.In("norm_out"), h, cfg.Groups))
	h = a.Conv2D(scope.In("conv_out"), h, channels, 3, 1, ConvAuto, InitFanIn)
	return TransposeAllAxes(h, 1, 2, 3, 0)
}

// aeRes is GN → SiLU → conv3×3 → GN → SiLU → conv3×3 (zero-init) + skip (1×1 conv when the
// channels change): the U-Net's residual block without the time embedding. h: [Cin, B, H, W].
func (a *Autoencoder) aeRes(scope *model.Scope, h *Node, out int) *Node {
	g := a.Cfg.Groups
	r := SiLU(a.GroupNorm(scope.In("norm1"), h, g))
	r = a.Conv2D(scope.In("conv1"), r, out, 3, 1, ConvAuto, InitFanIn)
	r = SiLU(a.GroupNorm(scope.In("norm2"), r, g))
	r = a.Conv2D(scope.In("conv2"), r, out, 3, 1, ConvAuto, InitZeros)
	skip := h
	if h.Shape().Dimensions[0] != out {
		skip = a.Conv2D(scope.In("skip"), h, out, 1, 1, ConvAuto, InitFanIn)
	}
	return Add(skip, r)
}

// KL is the KL divergence of the diagonal Gaussian posterior N(mean, exp(logVar)) from N(0, I), per
// example: ½·Σ(mean² + exp(logVar) − 1 − logVar) over the latent's elements. mean, logVar:
// [B, h, w, z_c] → [B].
func KL(mean, logVar *Node) *Node {
	t := Sub(Add(Square(mean), Exp(logVar)), OnePlus(logVar))
	return MulScalar(ReduceSum(t, 1, 2, 3), 0.5)
}

// SamplePosterior draws z = mean + exp(½·logVar)·eps (the reparameterization trick). eps has
// mean's shape.
func SamplePosterior(mean, logVar, eps *Node) *Node {
	return Add(mean, Mul(Exp(MulScalar(logVar, 0.5)), eps))
}
