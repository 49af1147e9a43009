package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// FirstStage reports whether the run trains part of the autoencoder (model.arch autoencoder or
// tiny_decoder) rather than a denoiser.
func (c Config) FirstStage() bool { return c.Arch == ArchAutoencoder || c.Arch == ArchTinyDecoder }

// ArchTinyDecoder marks a run that distills the `tiny_decoder:` section's decoder from the full
// autoencoder decoder of its latent data (SDXS §3.2) instead of training a denoiser.
const ArchTinyDecoder = "tiny_decoder"

// TinyDecoderConfig is SDXS's tiny image decoder (Song et al., arXiv 2403.16627 §3.2): CNN only —
// no attention, no normalization — built like TAESD's decoder: a soft clamp tanh(z/3)·3, a 3×3
// conv and ReLU, then per 2× upsampling Blocks residual blocks, nearest 2× upsampling and a conv,
// then OutBlocks blocks (TAESD: one) and a 3×3 conv to the image channels. Block: conv3×3 →
// ReLU → conv3×3 → ReLU → conv3×3, plus the input, then ReLU.
//
// Training (model.arch tiny_decoder on latent rows): the VD loss
//
//	L = l1_weight·mean|↓k(T(z)) − ↓k(D(z))| + [step ≥ gan_start]·gan_weight·mean(−P(T(z)))
//
// with D the full decoder (frozen; its output is the "real" image of the patch discriminator P,
// trained with the hinge loss), T the tiny decoder and ↓k average pooling by k = downsample
// (the paper: 8).
type TinyDecoderConfig struct {
	// Channels is the width of every conv (TAESD: 64).
	Channels int `mapstructure:"channels"`
	// Blocks is the residual blocks before each upsampling (TAESD: 3).
	Blocks int `mapstructure:"blocks"`
	// OutBlocks is the residual blocks at full resolution, after the last upsampling (TAESD: 1;
	// 0 drops them — at 32×32 with 16 channels they are half the decoder's multiply-adds).
	OutBlocks int `mapstructure:"out_blocks"`
	// Downsample is k of the VD loss's L1 term (average pooling by k; 1: full resolution).
	Downsample int `mapstructure:"downsample"`
	// L1Weight and GANWeight weight the two terms; GANStart is the step at which the
	// discriminator and the adversarial term switch on (< 0: never).
	L1Weight  float64 `mapstructure:"l1_weight"`
	GANWeight float64 `mapstructure:"gan_weight"`
	GANStart  int     `mapstructure:"gan_start"`
	// DiscChannels, DiscLayers and DiscLR size and train the patch discriminator (as the
	// autoencoder's: stride-2 3×3 convs, GroupNorm, SiLU, 1×1 conv to per-patch logits).
	DiscChannels int     `mapstructure:"disc_channels"`
	DiscLayers   int     `mapstructure:"disc_layers"`
	DiscLR       float64 `mapstructure:"disc_lr"`
}

// DefaultTinyDecoderConfig is TAESD's width at the paper's loss: 64 channels, 3 blocks, ↓8 L1,
// the adversarial term on from the start.
func DefaultTinyDecoderConfig() TinyDecoderConfig {
	return TinyDecoderConfig{Channels: 64, Blocks: 3, OutBlocks: 1, Downsample: 8, L1Weight: 1, GANWeight: 0.1, GANStart: 0,
		DiscChannels: 32, DiscLayers: 2, DiscLR: 2e-4}
}

// Validate checks every key; errors name it as "tiny_decoder.<key>".
func (c TinyDecoderConfig) Validate() error {
	for _, kv := range []struct {
		key string
		v   int
	}{{"channels", c.Channels}, {"blocks", c.Blocks}, {"downsample", c.Downsample}, {"disc_channels", c.DiscChannels}, {"disc_layers", c.DiscLayers}} {
		if kv.v <= 0 {
			return fmt.Errorf("tiny_decoder.%s: must be positive, got %d", kv.key, kv.v)
		}
	}
	for _, kv := range []struct {
		key string
		v   float64
	}{{"l1_weight", c.L1Weight}, {"gan_weight", c.GANWeight}, {"disc_lr", c.DiscLR}} {
		if !(kv.v >= 0) {
			return fmt.Errorf("tiny_decoder.%s: must be >= 0, got %g", kv.key, kv.v)
		}
	}
	if c.OutBlocks < 0 {
		return fmt.Errorf("tiny_decoder.out_blocks: must be >= 0, got %d", c.OutBlocks)
	}
	return nil
}

// TinyDecoder builds the decoder of a TinyDecoderConfig (channels-first inside).
type TinyDecoder struct {
	Cfg TinyDecoderConfig
	*Builder
}

// NewTinyDecoder validates cfg and returns a tiny decoder whose missing variables are initialized
// from seed.
func NewTinyDecoder(cfg TinyDecoderConfig, seed uint64) (*TinyDecoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &TinyDecoder{Cfg: cfg, Builder: &Builder{Seed: seed}}, nil
}

// Decode maps latents z: [B, h, w, z_c] (unscaled, as the full decoder reads them) to images
// [B, h·f, w·f, channels], f = factor (a power of two).
func (t *TinyDecoder) Decode(scope *model.Scope, z *Node, factor, channels int) *Node {
	if factor < 1 || factor&(factor-1) != 0 {
		panic(fmt.Errorf("tiny decoder: factor %d is not a power of two", factor))
	}
	c := t.Cfg.Channels
	h := MulScalar(Tanh(DivScalar(z, 3)), 3)
	h = ReLU(t.Conv2D(scope.In("conv_in"), TransposeAllAxes(h, 3, 0, 1, 2), c, 3, 1, ConvAuto, InitFanIn))
	for l := 0; 1<<l < factor; l++ {
		s := scope.In("up%d", l)
		for i := range t.Cfg.Blocks {
			h = t.block(s.In("block%d", i), h)
		}
		h = t.UpsampleConv2D(s.In("upsample"), h, c, ConvAuto, InitFanIn)
	}
	for i := range t.Cfg.OutBlocks {
		// the first keeps TAESD's (and every earlier run's) variable name
		if i == 0 {
			h = t.block(scope.In("block_out"), h)
		} else {
			h = t.block(scope.In("block_out%d", i), h)
		}
	}
	h = t.Conv2D(scope.In("conv_out"), h, channels, 3, 1, ConvAuto, InitFanIn)
	return TransposeAllAxes(h, 1, 2, 3, 0)
}

// block is TAESD's residual block: ReLU(x + conv(ReLU(conv(ReLU(conv(x)))))). h: [C, B, H, W].
func (t *TinyDecoder) block(scope *model.Scope, h *Node) *Node {
	c := t.Cfg.Channels
	r := ReLU(t.Conv2D(scope.In("conv1"), h, c, 3, 1, ConvAuto, InitFanIn))
	r = ReLU(t.Conv2D(scope.In("conv2"), r, c, 3, 1, ConvAuto, InitFanIn))
	r = t.Conv2D(scope.In("conv3"), r, c, 3, 1, ConvAuto, InitFanIn)
	return ReLU(Add(h, r))
}

// ReLU is max(x, 0).
func ReLU(x *Node) *Node { return Max(x, ZerosLike(x)) }
