package sampling

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// Decoder is the first stage of a latent model (latent diffusion, Rombach et al., arXiv
// 2112.10752): it maps sampled latents, scaled as the denoiser sees them (z·scale), to images
// x = D(z_sampled / scale) with the autoencoder's decoder. Source names the autoencoder.
type Decoder struct {
	Source models.LatentSource
	Tiny   *models.TinyDecoderConfig // SDXS's tiny decoder; nil: the autoencoder's decoder
	Scale  float64
	exec   *model.Exec
	graph  func(root *model.Scope, z *Node) *Node
}

// NewDecoder builds the decoder of src — the autoencoder's, or SDXS's tiny decoder of tiny when
// not nil (models.LatentDecodeFunc) — over the weights store holds under the nested scopes (e.g.
// "model", "decoder": checkpoint weights loaded by autoenc; an exported file's first stage). It
// is compiled on first use.
func NewDecoder(backend compute.Backend, store *model.Store, src models.LatentSource, tiny *models.TinyDecoderConfig, scale float64, scopes ...string) (*Decoder, error) {
	decode, err := models.LatentDecodeFunc(src, tiny, true, 0)
	if err != nil {
		return nil, err
	}
	if !(scale > 0) {
		return nil, fmt.Errorf("decoder of %s: latent scale %g, want > 0", src.Run, scale)
	}
	d := &Decoder{Source: src, Tiny: tiny, Scale: scale}
	d.graph = func(root *model.Scope, z *Node) *Node {
		scope := root
		for _, name := range scopes {
			scope = scope.In("%s", name)
		}
		return decode(scope, DivScalar(z, scale))
	}
	d.exec, err = model.NewExec(backend, store, d.graph)
	return d, err
}

// Graph builds the decoder into another graph (the ONNX generator): scaled latents z
// [B, h, w, z_c] → images, with the weights of the store root belongs to.
func (d *Decoder) Graph(root *model.Scope, z *Node) *Node { return d.graph(root, z) }

// Decode maps n scaled latents [n, LatentShape()] (flattened) to images [n, ImageShape()] in
// about [−1, 1].
func (d *Decoder) Decode(latents []float32, n int) ([]float32, error) {
	h, w, c := d.LatentShape()
	if len(latents) != n*h*w*c {
		return nil, fmt.Errorf("decode: %d values for %d latents of %d×%d×%d", len(latents), n, h, w, c)
	}
	out, err := d.exec.Call1(tensors.FromFlatDataAndDimensions(latents, n, h, w, c))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return tensors.MustCopyFlatData[float32](out), nil
}

// LatentShape is the shape [h, w, c] of one latent.
func (d *Decoder) LatentShape() (h, w, c int) { return d.Source.LatentShape() }

// ImageShape is the shape [H, W, C] of one decoded image.
func (d *Decoder) ImageShape() (h, w, c int) {
	return d.Source.ImageSize, d.Source.ImageSize, d.Source.Channels
}

// DecoderFromTensors builds the decoder of src (tiny: see NewDecoder) over weights keyed by path
// inside the decoder ("conv_out/kernel"; an exported latent model's first stage,
// export.Latent.Decoder), held in a store of its own.
func DecoderFromTensors(backend compute.Backend, src models.LatentSource, tiny *models.TinyDecoderConfig, scale float64, weights map[string]*tensors.Tensor) (*Decoder, error) {
	store := model.NewStore()
	for name, t := range weights {
		v, err := store.CreateVariable("/decoder/"+name, t)
		if err != nil {
			return nil, fmt.Errorf("decoder tensor %s: %w", name, err)
		}
		v.Trainable = false
	}
	return NewDecoder(backend, store, src, tiny, scale, "decoder")
}
