package models

import (
	"encoding/json"
	"fmt"

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
	return id, id.Autoencoder.Validate()
}

// LatentDecodeFunc is the graph of a latent model's first stage: the autoencoder's decoder of
// src, or SDXS's tiny decoder of tiny when not nil (trained on src's latents); it maps unscaled
// latents [B, h, w, z_c] to images [B, H, W, C] with the weights under scope (frozen: they must
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
			return td.Decode(scope, z, src.Autoencoder.Factor(), src.Channels)
		}, nil
	}
	ae, err := NewAutoencoder(src.Autoencoder, seed)
	if err != nil {
		return nil, err
	}
	ae.Frozen = frozen
	return func(scope *model.Scope, z *Node) *Node { return ae.Decode(scope, z, src.Channels) }, nil
}
