package models

import (
	"fmt"
	"slices"
	"strings"
)

// Config is the `model:` section of a run config: a class-conditional U-Net denoiser
// (Ronneberger et al. 2015; the DDPM variant of Ho et al., arXiv 2006.11239).
type Config struct {
	// Arch names the architecture: "unet" (the keys below through pixel_head) or "dit" (the
	// transformer of DiT; its keys under `dit:`, with patch_size, time_features, num_classes,
	// drop_blocks and text shared).
	Arch string `mapstructure:"arch"`
	// BaseChannels is the channel count of the first level (and of the stem conv).
	BaseChannels int `mapstructure:"base_channels"`
	// ChannelMult gives each resolution level's channels as a multiple of BaseChannels; the
	// number of entries is the number of levels (each but the last halves the resolution).
	ChannelMult []int `mapstructure:"channel_mult"`
	// NumResBlocks is the residual blocks per level on the way down (and up).
	NumResBlocks int `mapstructure:"num_res_blocks"`
	// AttentionResolutions lists the feature-map sides (in pixels) where self-attention follows
	// each down-path residual block; the middle block always has attention if MidAttention.
	AttentionResolutions []int `mapstructure:"attention_resolutions"`
	// AttentionHeads is the number of heads of every self-attention layer.
	AttentionHeads int `mapstructure:"attention_heads"`
	// MidAttention puts a self-attention layer between the two middle residual blocks.
	MidAttention bool `mapstructure:"mid_attention"`
	// Groups is the GroupNorm group count; it must divide every level's channels.
	Groups int `mapstructure:"groups"`
	// TimeFeatures is the number of sinusoidal features of 1000·t.
	TimeFeatures int `mapstructure:"time_features"`
	// EmbedDim is the width of the time+class embedding fed to every residual block.
	EmbedDim int `mapstructure:"embed_dim"`
	// NumClasses is the number of real classes; index NumClasses is the null class (CFG).
	NumClasses int `mapstructure:"num_classes"`
	// Conv selects the convolution formulation: auto, im2col or native.
	Conv string `mapstructure:"conv"`
	// PatchSize folds p×p pixel patches into channels before the stem and unfolds them after the
	// output conv (space-to-depth, as the patchify stem of DiT, Peebles & Xie arXiv 2212.09748), so
	// the U-Net runs at 1/p resolution. 1 disables it.
	PatchSize int `mapstructure:"patch_size"`
	// PixelHead > 0 adds a full-resolution refinement after the patch output (patch_size > 1):
	// y = y_patch + conv3×3(SiLU(conv3×3([x_t, y_patch]))) with PixelHead hidden channels, the
	// second conv zero-initialized. The patch output predicts each pixel of a p×p patch from its own
	// output channel; the head mixes neighbours across patch borders. 0 disables it.
	PixelHead int `mapstructure:"pixel_head"`
	// DropBlocks removes blocks from the U-Net (SDXS pruning, arXiv 2403.16627 §3.2): names from
	// BlockNames, e.g. mid/attn, mid/res1, down1/attn0, up2/res0. A removed residual block keeps its
	// skip path (identity, or its 1×1 skip conv where the channels change); a removed attention
	// layer is the identity.
	DropBlocks []string `mapstructure:"drop_blocks"`
	// Text is the caption encoder and the network's cross-attention (part 13); off by default.
	Text TextConfig `mapstructure:"text"`
	// DiT is the transformer of model.arch dit.
	DiT DiTConfig `mapstructure:"dit"`
	// LoRA is the run's lora: section (configs copies it here; not a key of model:): low-rank
	// adapters on the targeted layers; nil: none.
	LoRA *LoRAConfig `mapstructure:"-"`
}

// BlockNames lists the removable blocks of a config, from input to output. DiT: block<i>. U-Net: down<l>/res<i> and
// down<l>/attn<i> (attention exists only at AttentionResolutions), mid/res0, mid/attn (with
// MidAttention), mid/res1, up<l>/res<i>.
func (c Config) BlockNames() []string {
	var names []string
	if c.Transformer() { // whole transformer blocks (SDXS's block removal on a transformer)
		for i := range c.DiT.Depth {
			names = append(names, fmt.Sprintf("block%d", i))
		}
		return names
	}
	for l := range c.ChannelMult {
		for i := range c.NumResBlocks {
			names = append(names, fmt.Sprintf("down%d/res%d", l, i), fmt.Sprintf("down%d/attn%d", l, i))
		}
	}
	names = append(names, "mid/res0")
	if c.MidAttention {
		names = append(names, "mid/attn")
	}
	names = append(names, "mid/res1")
	for l := len(c.ChannelMult) - 1; l >= 0; l-- {
		for i := range c.NumResBlocks {
			names = append(names, fmt.Sprintf("up%d/res%d", l, i))
		}
	}
	return names
}

// Dropped reports whether the block (a BlockNames name) is removed by DropBlocks.
func (c Config) Dropped(block string) bool { return slices.Contains(c.DropBlocks, block) }

// UsesVariable reports whether a variable path relative to the network's scope (e.g.
// "mid/res1/conv1/weights") belongs to the network: false inside a dropped block, except a dropped
// residual block's skip conv.
func (c Config) UsesVariable(rel string) bool {
	for _, b := range c.DropBlocks {
		if rest, ok := strings.CutPrefix(rel, b+"/"); ok {
			return strings.Contains(b, "/res") && strings.HasPrefix(rest, "skip/")
		}
	}
	return true
}

// DefaultConfig is the default teacher U-Net, sized to train on MNIST on 2 CPU cores.
func DefaultConfig() Config {
	return Config{
		Arch:                 "unet",
		BaseChannels:         32,
		ChannelMult:          []int{1, 2, 2},
		NumResBlocks:         1,
		AttentionResolutions: []int{8},
		AttentionHeads:       4,
		MidAttention:         true,
		Groups:               8,
		TimeFeatures:         64,
		EmbedDim:             128,
		NumClasses:           10,
		Conv:                 string(ConvAuto),
		PatchSize:            1,
		Text:                 DefaultTextConfig(),
		DiT:                  DefaultDiTConfig(),
	}
}

// ConvImpls lists the accepted values of model.conv.
var ConvImpls = []string{string(ConvAuto), string(ConvIm2Col), string(ConvNative)}

// Validate checks every key; errors name the key as "model.<key>".
func (c Config) Validate() error {
	switch c.Arch {
	case ArchUNet:
	case ArchDiT, ArchMMDiT:
		return c.validateDiT()
	case ArchAutoencoder, ArchTinyDecoder:
		return nil // the autoencoder: and tiny_decoder: sections are validated on their own
	default:
		return fmt.Errorf("model.arch: unknown architecture %q (known: unet, dit, mmdit, autoencoder, tiny_decoder)", c.Arch)
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"base_channels", c.BaseChannels}, {"num_res_blocks", c.NumResBlocks}, {"attention_heads", c.AttentionHeads},
		{"groups", c.Groups}, {"time_features", c.TimeFeatures}, {"embed_dim", c.EmbedDim}, {"num_classes", c.NumClasses}, {"patch_size", c.PatchSize}} {
		if kv.v <= 0 {
			return fmt.Errorf("model.%s: must be positive, got %d", kv.key, kv.v)
		}
	}
	if len(c.ChannelMult) == 0 {
		return fmt.Errorf("model.channel_mult: needs at least one level")
	}
	if c.PixelHead < 0 {
		return fmt.Errorf("model.pixel_head: must be >= 0 (0 disables it), got %d", c.PixelHead)
	}
	for i, m := range c.ChannelMult {
		ch := m * c.BaseChannels
		if m <= 0 {
			return fmt.Errorf("model.channel_mult[%d]: must be positive, got %d", i, m)
		}
		if ch%c.Groups != 0 {
			return fmt.Errorf("model.groups: %d does not divide the %d channels of level %d", c.Groups, ch, i)
		}
		if ch%c.AttentionHeads != 0 {
			return fmt.Errorf("model.attention_heads: %d does not divide the %d channels of level %d", c.AttentionHeads, ch, i)
		}
	}
	if c.BaseChannels%c.Groups != 0 {
		return fmt.Errorf("model.groups: %d does not divide base_channels %d", c.Groups, c.BaseChannels)
	}
	for i, r := range c.AttentionResolutions {
		if r <= 0 {
			return fmt.Errorf("model.attention_resolutions[%d]: must be positive, got %d", i, r)
		}
	}
	if c.TimeFeatures%2 != 0 {
		return fmt.Errorf("model.time_features: must be even, got %d", c.TimeFeatures)
	}
	names := c.BlockNames()
	for _, b := range c.DropBlocks {
		if !slices.Contains(names, b) {
			return fmt.Errorf("model.drop_blocks: unknown block %q (known: %v)", b, names)
		}
	}
	if !slices.Contains(ConvImpls, c.Conv) {
		return fmt.Errorf("model.conv: unknown value %q (known: %v)", c.Conv, ConvImpls)
	}
	return c.Text.validate(c)
}

// validateDiT checks the keys a DiT reads.
func (c Config) validateDiT() error {
	for _, kv := range []struct {
		key string
		v   int
	}{{"time_features", c.TimeFeatures}, {"num_classes", c.NumClasses}, {"patch_size", c.PatchSize}} {
		if kv.v <= 0 {
			return fmt.Errorf("model.%s: must be positive, got %d", kv.key, kv.v)
		}
	}
	if c.TimeFeatures%2 != 0 {
		return fmt.Errorf("model.time_features: must be even, got %d", c.TimeFeatures)
	}
	if err := c.DiT.validate(c); err != nil {
		return err
	}
	names := c.BlockNames()
	for _, b := range c.DropBlocks {
		if !slices.Contains(names, b) {
			return fmt.Errorf("model.drop_blocks: unknown block %q (known: %v)", b, names)
		}
	}
	return c.Text.validate(c)
}

// CheckInput verifies that an image side fits the network: divisible by the patch size and, for
// the U-Net, halving evenly at every level.
func (c Config) CheckInput(side int) error {
	levels := len(c.ChannelMult)
	if side%c.PatchSize != 0 {
		return fmt.Errorf("image side %d is not divisible by model.patch_size %d", side, c.PatchSize)
	}
	if c.Transformer() {
		return nil
	}
	if (side/c.PatchSize)%(1<<(levels-1)) != 0 {
		return fmt.Errorf("image side %d / patch_size %d is not divisible by 2^%d (model.channel_mult has %d levels)", side, c.PatchSize, levels-1, levels)
	}
	return nil
}
