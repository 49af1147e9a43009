//go:build onnx

package generate

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model/onnx"

	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// TestExportONNXRoundTrip (`make test-onnx`): the exported ONNX denoiser and 3-step generator,
// loaded back and run by ONNX Runtime, reproduce the pure-Go backend's prediction and Generate's
// images for the same inputs within 1e-4 relative.
func TestExportONNXRoundTrip(t *testing.T) {
	onnxRoundTrip(t, fixture.file, nil)
}

// TestExportONNXRoundTripText: the same for a caption-conditioned model, whose ONNX graphs take
// cond [N, 1+L] (the null class, then the prompt's token ids).
func TestExportONNXRoundTripText(t *testing.T) {
	file := filepath.Join(t.TempDir(), "text.safetensors")
	textModelFile(t, file)
	onnxRoundTrip(t, file, []string{"the digit 1", "a handwritten seven"})
}

// TestExportONNXRoundTripDiT: the same for the caption-conditioned transformer (model.arch dit).
func TestExportONNXRoundTripDiT(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dit.safetensors")
	textModelFile(t, file, onDiT)
	onnxRoundTrip(t, file, []string{"the digit 1", "a handwritten seven"})
}

// TestExportONNXRoundTripMMDiT: the same for the joint-attention transformer (model.arch mmdit).
func TestExportONNXRoundTripMMDiT(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mmdit.safetensors")
	textModelFile(t, file, onDiT, func(job *trainer.Job) { job.Model.Arch = models.ArchMMDiT })
	onnxRoundTrip(t, file, []string{"the digit 1", "a handwritten seven"})
}

// TestExportONNXRoundTripLatent: a latent model (denoiser on 8×8×4 latents + the autoencoder's
// decoder, and + SDXS's tiny decoder): the ONNX denoiser works on latents and the ONNX generator
// decodes in-graph, matching Denoise and Generate's decoded 32×32 images.
func TestExportONNXRoundTripLatent(t *testing.T) {
	for _, tiny := range []*models.TinyDecoderConfig{nil, {Channels: 8, Blocks: 1, Downsample: 1, DiscChannels: 8, DiscLayers: 1}} {
		m, err := export.ReadModel(fixture.file)
		if err != nil {
			t.Fatal(err)
		}
		ae := models.DefaultAutoencoderConfig()
		ae.Channels, ae.Groups = 8, 4
		m.Latent = &export.Latent{Source: models.LatentSource{Run: "ae", Step: 1, CheckpointSHA256: "00", Autoencoder: ae,
			ImageSize: 32, Channels: 1}, Scale: 1.7, Tiny: tiny}
		if err := m.RandomWeights(5); err != nil {
			t.Fatal(err)
		}
		for name, tt := range m.Tensors { // zero-initialized output layers would make the denoiser's check vacuous
			v := tensors.MustCopyFlatData[float32](tt)
			for i := range v {
				v[i] += 0.02 * float32(math.Sin(float64(i+len(name))))
			}
			m.Tensors[name] = tensors.FromFlatDataAndDimensions(v, tt.Shape().Dimensions...)
		}
		file := filepath.Join(t.TempDir(), "latent.safetensors")
		if err := export.Write(file, m); err != nil {
			t.Fatal(err)
		}
		onnxRoundTrip(t, file, nil)
	}
}

func onnxRoundTrip(t *testing.T, file string, prompts []string) {
	lib := os.Getenv("FEWSTEP_ONNXRUNTIME")
	if lib == "" {
		t.Skip("FEWSTEP_ONNXRUNTIME (path of libonnxruntime.so.1) not set; run `make test-onnx`")
	}
	ort, err := compute.NewWithConfig("onnx:" + lib)
	if err != nil {
		t.Fatal(err)
	}
	gob, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := export.ReadModel(file)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(m, ort)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := New(m, gob)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	den, gen := filepath.Join(dir, "m.onnx"), filepath.Join(dir, "m-generator.onnx")
	const n = 2
	if err := g.ExportONNX(den, gen, n, Options{}); err != nil {
		t.Fatal(err)
	}
	h, w, c := m.InputShape()
	var x []float32
	for i := range n {
		x = append(x, sampling.NoiseForSeed(uint64(i), h*w*c)...)
	}
	tt, cond := []float32{0.8, 0.3}, []int32{1, 7}
	condDims := []int{n}
	if prompts != nil {
		if cond, _, err = ref.PromptCond(prompts); err != nil {
			t.Fatal(err)
		}
		condDims = []int{n, m.Model.CondWidth()}
	}
	want, err := ref.Denoise(x, tt, cond)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []float32
	if prompts != nil {
		imgs, err = ref.GeneratePrompts(prompts, []uint64{0, 1}, Options{})
	} else {
		imgs, err = ref.Generate([]int{1, 7}, []uint64{0, 1}, Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	check := func(path string, want []float32, in ...any) {
		e, err := onnx.LoadFromFile(ort, path)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Finalize()
		outs, err := e.Call(in...)
		if err != nil {
			t.Fatal(err)
		}
		got := tensors.MustCopyFlatData[float32](outs[0])
		d, s := 0.0, 0.0
		for i := range want {
			d, s = math.Max(d, math.Abs(float64(got[i]-want[i]))), math.Max(s, math.Abs(float64(want[i])))
		}
		t.Logf("%s: relative error %.3g", filepath.Base(path), d/s)
		if d > 1e-4*s {
			t.Errorf("%s: max error %g at scale %g", path, d, s)
		}
	}
	img := tensors.FromFlatDataAndDimensions(x, n, h, w, c)
	check(den, want, img, tensors.FromFlatDataAndDimensions(tt, n), tensors.FromFlatDataAndDimensions(cond, condDims...))
	check(gen, imgs, img, tensors.FromFlatDataAndDimensions(cond, condDims...))
}
