package export

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// tinyConfig is a small U-Net (the smoke config's) for 32×32×1 images.
func tinyConfig() models.Config {
	mc := models.DefaultConfig()
	mc.PatchSize, mc.BaseChannels, mc.ChannelMult, mc.AttentionResolutions = 2, 8, []int{1, 2}, []int{8}
	mc.AttentionHeads, mc.Groups, mc.TimeFeatures, mc.EmbedDim = 2, 4, 16, 32
	return mc
}

// tinyModel is a randomly initialized tiny model with complete metadata.
func tinyModel(t testing.TB) *Model {
	t.Helper()
	m := &Model{
		Model: tinyConfig(), Diffusion: models.DefaultDiffusionConfig(), Data: data.DefaultConfig(),
		Sample: Sampling{Sampler: "ddim", Steps: 4, CFG: 2, Spacing: "trailing",
			Section: map[string]any{"eta": 0.0, "clip_x0": true, "timesteps": []float64{}}},
		ClassNames: []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"},
		Source:     Source{Run: "runs/tiny", Step: 40, Weights: WeightsEMA},
	}
	if err := m.RandomWeights(7); err != nil {
		t.Fatal(err)
	}
	return m
}

// writeTiny writes tinyModel to a temp file and returns the model and the path.
func writeTiny(t testing.TB) (*Model, string) {
	t.Helper()
	m := tinyModel(t)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := Write(path, m); err != nil {
		t.Fatal(err)
	}
	return m, path
}

// sameBytes reports whether two tensors have the same shape and bit-identical data.
func sameBytes(t testing.TB, a, b *tensors.Tensor) bool {
	t.Helper()
	if !a.Shape().Equal(b.Shape()) {
		return false
	}
	var ab, bb []byte
	if err := a.ConstBytes(func(d []byte) { ab = slices.Clone(d) }); err != nil {
		t.Fatal(err)
	}
	if err := b.ConstBytes(func(d []byte) { bb = slices.Clone(d) }); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ab, bb)
}
