package export

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// KeyLatent is the metadata key of a latent model's first stage (Latent, as JSON: the
// autoencoder's identity and the latent scale); absent for pixel models.
const KeyLatent = "fewstep.latent"

// DecoderPrefix starts the file names of a latent model's decoder weights:
// DecoderPrefix + path inside the decoder ("first_stage/decoder/conv_out/kernel").
const DecoderPrefix = "first_stage/decoder/"

// Latent is the first stage of a latent model (latent diffusion, Rombach et al., arXiv
// 2112.10752): the autoencoder's decoder that maps the denoiser's samples [n, h, w, z_c] to images
// [n, image_size, image_size, channels], so one file generates images by itself.
type Latent struct {
	// Source is the autoencoder the training latents were encoded with (data encode's record).
	Source models.LatentSource `json:"source"`
	// Scale is LDM's scale_by_std factor: the denoiser works on latents × Scale, the decoder
	// reads samples / Scale.
	Scale float64 `json:"scale"`
	// Tiny is the config of SDXS's tiny decoder when the file carries it instead of the
	// autoencoder's decoder (export -decoder TINY_RUN); nil: the full decoder.
	Tiny *models.TinyDecoderConfig `json:"tiny_decoder,omitempty"`
	// Decoder holds the decoder's weights keyed by path inside the decoder ("conv_out/kernel").
	Decoder map[string]*tensors.Tensor `json:"-"`
}

// InputShape is the denoiser's input [h, w, c]: the latent's for a latent model, else the image's.
func (m *Model) InputShape() (h, w, c int) {
	if m.Latent != nil {
		return m.Latent.Source.LatentShape()
	}
	return m.Data.ImageSize, m.Data.ImageSize, m.Data.Channels
}

// ImageShape is the shape of the images the model generates (decoded for a latent model).
func (m *Model) ImageShape() (h, w, c int) {
	if m.Latent != nil {
		return m.Latent.Source.ImageSize, m.Latent.Source.ImageSize, m.Latent.Source.Channels
	}
	return m.Data.ImageSize, m.Data.ImageSize, m.Data.Channels
}

// splitDecoder moves the DecoderPrefix tensors of a file into m.Latent.Decoder (present only
// with KeyLatent metadata; Check reports them as unexpected otherwise).
func (m *Model) splitDecoder() {
	if m.Latent == nil {
		return
	}
	m.Latent.Decoder = map[string]*tensors.Tensor{}
	for name, t := range m.Tensors {
		if rest, ok := strings.CutPrefix(name, DecoderPrefix); ok {
			m.Latent.Decoder[rest] = t
			delete(m.Tensors, name)
		}
	}
}

// parseLatent decodes KeyLatent when present.
func parseLatent(md map[string]string, m *Model) error {
	raw, ok := md[KeyLatent]
	if !ok {
		return nil
	}
	var l struct {
		Source json.RawMessage           `json:"source"`
		Scale  float64                   `json:"scale"`
		Tiny   *models.TinyDecoderConfig `json:"tiny_decoder"`
	}
	if err := decodeJSON(md, KeyLatent, &l); err != nil {
		return err
	}
	src, err := models.ParseLatentSource("metadata "+KeyLatent, string(l.Source))
	if err != nil {
		return err
	}
	if !(l.Scale > 0) {
		return fmt.Errorf("metadata %s: scale %g, want > 0 (%s)", KeyLatent, l.Scale, raw)
	}
	if l.Tiny != nil {
		if err := l.Tiny.Validate(); err != nil {
			return fmt.Errorf("metadata %s: %w", KeyLatent, err)
		}
	}
	m.Latent = &Latent{Source: src, Scale: l.Scale, Tiny: l.Tiny}
	return nil
}

// checkDecoder compares the decoder's tensors with those its autoencoder config builds.
func (l *Latent) checkDecoder() error {
	want, err := decoderExpected(l.Source, l.Tiny)
	if err != nil {
		return err
	}
	var bad []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		t, ok := l.Decoder[name]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("missing decoder tensor %q", DecoderPrefix+name))
		case t == nil || !t.Shape().Equal(want[name]):
			bad = append(bad, fmt.Sprintf("decoder tensor %q: shape %v, but the autoencoder config needs %s", DecoderPrefix+name, t, want[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(l.Decoder)) {
		if _, ok := want[name]; !ok {
			bad = append(bad, fmt.Sprintf("unexpected decoder tensor %q", DecoderPrefix+name))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", list(bad))
	}
	return nil
}

// decoderExpected returns the variables of the decoder of src's autoencoder config (or the tiny
// decoder of tiny): path inside the decoder → shape.
func decoderExpected(src models.LatentSource, tiny *models.TinyDecoderConfig) (map[string]shapes.Shape, error) {
	w, err := decoderWeights(src, tiny, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]shapes.Shape{}
	for name, t := range w {
		out[name] = t.Shape()
	}
	return out, nil
}

// decoderWeights builds the decoder of src (or the tiny decoder of tiny) on the pure-Go backend
// (never run) and returns its initial weights from seed: path inside the decoder → tensor.
func decoderWeights(src models.LatentSource, tiny *models.TinyDecoderConfig, seed uint64) (out map[string]*tensors.Tensor, err error) {
	decode, err := models.LatentDecodeFunc(src, tiny, false, seed)
	if err != nil {
		return nil, err
	}
	backend, err := goBackend()
	if err != nil {
		return nil, err
	}
	store := model.NewStore()
	e, err := model.NewExec(backend, store, func(root *model.Scope, z *Node) *Node {
		return decode(root.In("decoder"), z)
	})
	if err != nil {
		return nil, err
	}
	defer e.Finalize()
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("build the decoder: %v", r)
		}
	}()
	h, w, c := src.LatentShape()
	if _, err := e.Compile(shapes.Make(dtypes.Float32, 1, h, w, c)); err != nil {
		return nil, fmt.Errorf("build the decoder: %w", err)
	}
	out = map[string]*tensors.Tensor{}
	for v := range store.IterVariables() {
		val, err := v.Value()
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(v.Path(), "/decoder/")] = val
	}
	return out, nil
}
