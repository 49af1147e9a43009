package models

import (
	"encoding/json"
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// LatentSource is the autoencoder a latent file was written with (metadata data.MetaAutoencoder, written
// by `fewstep data encode`, and an exported latent model's fewstep.latent): which checkpoint, its
// SHA-256, its config and the images it encodes.
type LatentSource struct {
	Run              string            `json:"run"`
	Step             int               `json:"step"`
	CheckpointSHA256 string            `json:"checkpoint_sha256"`
	Autoencoder      AutoencoderConfig `json:"autoencoder"`
	ImageSize        int               `json:"image_size"`
	Channels         int               `json:"channels"`
	// Data is the image dataset that was encoded: eval's default classifier data for runs on
	// these latents (data.classifier_train).
	Data string `json:"data,omitempty"`
	// Posterior is what was written per image: "mean" (μ of q(z|x)) or "sample (seed S)".
	Posterior string `json:"posterior,omitempty"`
	// Norm, when set, is the per-channel normalization `data encode -norm channel` applied before
	// writing: the file's latents are (z − Shift[c])·Scale[c] of the encoder's z.
	Norm *LatentNorm `json:"channel_norm,omitempty"`
}

// LatentNorm is a per-channel affine map of latents (as SD3's and FLUX's autoencoders carry a
// shift and a scale factor, here one pair per channel): stored = (z − Shift[c])·Scale[c], so
// that every channel of the training latents has mean 0 and std 1 — with one global scale (LDM's
// scale_by_std) a channel with a larger spread keeps a higher signal-to-noise ratio than the
// others at every diffusion time.
type LatentNorm struct {
	Shift []float64 `json:"shift"`
	Scale []float64 `json:"scale"`
}

// Denormalize maps stored latents z [B, h, w, C] back to the encoder's: z/Scale[c] + Shift[c]
// (n nil: z unchanged).
func (n *LatentNorm) Denormalize(z *Node) *Node {
	if n == nil {
		return z
	}
	g, c := z.Graph(), z.Shape().Dimensions[z.Rank()-1]
	if len(n.Scale) != c || len(n.Shift) != c {
		panic(fmt.Errorf("latent channel_norm of %d/%d channels for latents of %d", len(n.Shift), len(n.Scale), c))
	}
	inv := make([]float32, c)
	shift := make([]float32, c)
	for i := range c {
		inv[i], shift[i] = float32(1/n.Scale[i]), float32(n.Shift[i])
	}
	dims := make([]int, z.Rank()) // [1, …, 1, C]: explicit broadcasting over the leading axes
	for i := range dims {
		dims[i] = 1
	}
	dims[len(dims)-1] = c
	vec := func(v []float32) *Node { return ConvertDType(Reshape(Const(g, v), dims...), z.DType()) }
	return Add(Mul(z, vec(inv)), vec(shift))
}

// LatentShape is the shape [h, w, c] of one latent.
func (id LatentSource) LatentShape() (h, w, c int) {
	side := id.ImageSize / id.Autoencoder.Factor()
	return side, side, id.Autoencoder.LatentChannels
}

// ParseLatentSource reads the JSON of data.MetaAutoencoder (or an exported model's fewstep.latent);
// file names the file for errors.
func ParseLatentSource(file, meta string) (LatentSource, error) {
	var id LatentSource
	if meta == "" {
		return id, fmt.Errorf("%s: no fewstep.autoencoder metadata: it was not written by `fewstep data encode`", file)
	}
	if err := json.Unmarshal([]byte(meta), &id); err != nil {
		return id, fmt.Errorf("%s: metadata fewstep.autoencoder: %w", file, err)
	}
	if id.Run == "" || id.CheckpointSHA256 == "" || id.ImageSize <= 0 || id.Channels <= 0 {
		return id, fmt.Errorf("%s: metadata fewstep.autoencoder lacks run, checkpoint_sha256, image_size or channels: %s", file, meta)
	}
	if n := id.Norm; n != nil {
		if len(n.Shift) != id.Autoencoder.LatentChannels || len(n.Scale) != id.Autoencoder.LatentChannels {
			return id, fmt.Errorf("%s: metadata fewstep.autoencoder: channel_norm has %d shifts and %d scales for %d latent channels", file, len(n.Shift), len(n.Scale), id.Autoencoder.LatentChannels)
		}
		for c, v := range n.Scale {
			if !(v > 0) || math.IsInf(v, 0) {
				return id, fmt.Errorf("%s: metadata fewstep.autoencoder: channel_norm scale[%d] = %g, want a positive number", file, c, v)
			}
		}
	}
	return id, id.Autoencoder.Validate()
}

// LatentDecodeFunc is the graph of a latent model's first stage: the autoencoder's decoder of
// src, or SDXS's tiny decoder of tiny when not nil (trained on src's latents); it maps unscaled
// latents [B, h, w, z_c] (as the latent file stores them: src.Norm undone first) to images [B, H, W, C] with the weights under scope (frozen: they must
// exist; else missing ones are created, as for listing the variables).
// Missing weights are initialized from seed.
func LatentDecodeFunc(src LatentSource, tiny *TinyDecoderConfig, frozen bool, seed uint64) (func(scope *model.Scope, z *Node) *Node, error) {
	if tiny != nil {
		td, err := NewTinyDecoder(*tiny, seed)
		if err != nil {
			return nil, err
		}
		td.Frozen = frozen
		return func(scope *model.Scope, z *Node) *Node {
			return td.Decode(scope, src.Norm.Denormalize(z), src.Autoencoder.Factor(), src.Channels)
		}, nil
	}
	ae, err := NewAutoencoder(src.Autoencoder, seed)
	if err != nil {
		return nil, err
	}
	ae.Frozen = frozen
	return func(scope *model.Scope, z *Node) *Node {
		return ae.Decode(scope, src.Norm.Denormalize(z), src.Channels)
	}, nil
}
