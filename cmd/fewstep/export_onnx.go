package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/generate"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/sampling"
)

// exportONNX writes the denoiser of a run or exported file as ONNX (out) and its K-step generator
// (out with "-generator" before ".onnx"), and with reference != "" the inputs and fewstep's own
// outputs that `make interop` compares ONNX Runtime's (node) against.
func exportONNX(runDir, modelFile, out, ckpt string, raw, mergeLoRA bool, decoder string, batch int, opts generate.Options, reference string) error {
	if (runDir == "") == (modelFile == "") || out == "" || !strings.HasSuffix(out, ".onnx") {
		return usagef("export -format onnx: one of -run RUN_DIR or -model FILE, and -out FILE.onnx, are required")
	}
	var m *export.Model
	var err error
	if modelFile != "" {
		m, err = export.ReadModel(modelFile)
	} else if m, err = runModel(runDir, ckpt, raw, mergeLoRA); err == nil {
		err = useTinyDecoderFile(m, runDir, decoder)
	}
	if err != nil {
		return err
	}
	backend, err := engine.New()
	if err != nil {
		return err
	}
	g, err := generate.New(m, backend)
	if err != nil {
		return err
	}
	genPath := strings.TrimSuffix(out, ".onnx") + "-generator.onnx"
	if err := g.ExportONNX(out, genPath, batch, opts); err != nil {
		return err
	}
	sc, err := g.Config(opts)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (denoiser, batch %d) and %s (%d %s steps, cfg %g, batch %d)\n", out, batch, genPath, sc.Steps, sc.Sampler, sc.CFG, batch)
	if reference == "" {
		return nil
	}
	goBackend, err := compute.NewWithConfig("go") // the reference is fewstep's default pure-Go backend
	if err != nil {
		return err
	}
	ref, err := generate.New(m, goBackend)
	if err != nil {
		return err
	}
	return writeONNXReference(ref, reference, out, genPath, batch, opts)
}

// onnxReference is reference.json of `make interop`: the .bin files hold little-endian float32.
type onnxReference struct {
	Batch      int       `json:"batch"`
	Shape      []int     `json:"shape"`       // [H, W, C] of x, x_T and z (latents for a latent model)
	ImageShape []int     `json:"image_shape"` // [H, W, C] of the generator's images
	Denoiser   string    `json:"denoiser"`
	Generator  string    `json:"generator"`
	X          string    `json:"x"`
	T          []float32 `json:"t"`
	Cond       []int32   `json:"cond"`
	CondShape  []int     `json:"cond_shape"` // [N] (classes) or [N, 1+L] (text: class, then token ids)
	Prompts    []string  `json:"prompts,omitempty"`
	Pred       string    `json:"pred"`
	XT         string    `json:"x_T"`
	Z          string    `json:"z,omitempty"`
	ZSteps     int       `json:"z_steps"`
	Images     string    `json:"images"`
	Seeds      []uint64  `json:"seeds"`
	SampleNote string    `json:"sample"`
}

// writeONNXReference writes, computed by g (on the pure-Go backend), the denoiser's inputs (x = the noise of seeds 0…N−1, t spread over
// (0, 1), classes i mod K) with its output on fewstep's backend, and the generator's inputs (x_T and
// step noises of the same seeds) with the images `fewstep sample -model` draws for them.
func writeONNXReference(g *generate.Generator, dir, denPath, genPath string, batch int, opts generate.Options) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	h, w, c := g.Model().InputShape() // a latent model's x, x_T and z are latents
	per := h * w * c
	ih, iw, ic := g.Shape()
	ref := onnxReference{Batch: batch, Shape: []int{h, w, c}, ImageShape: []int{ih, iw, ic}, Denoiser: abs(denPath), Generator: abs(genPath)}
	var x []float32
	mc := g.Model().Model
	for i := range batch {
		ref.Seeds = append(ref.Seeds, uint64(i))
		x = append(x, sampling.NoiseForSeed(uint64(i), per)...)
		ref.T = append(ref.T, float32(0.95-0.9*float64(i)/math.Max(1, float64(batch-1))))
		ref.Cond = append(ref.Cond, int32(i%mc.NumClasses))
	}
	ref.CondShape = []int{batch}
	if mc.Text.On() { // prompts: the class names (or, without them, "") in turn
		for i := range batch {
			p := ""
			if len(mc.Text.ClassNames) > 0 {
				p = mc.Text.ClassNames[i%len(mc.Text.ClassNames)]
			}
			ref.Prompts = append(ref.Prompts, p)
		}
		var err error
		if ref.Cond, _, err = g.PromptCond(ref.Prompts); err != nil {
			return err
		}
		ref.CondShape = []int{batch, mc.CondWidth()}
	}
	pred, err := g.Denoise(x, ref.T, ref.Cond)
	if err != nil {
		return err
	}
	plan, err := g.ONNXPlan(opts)
	if err != nil {
		return err
	}
	var z []float32
	for _, p := range plan {
		if p.Noise {
			ref.ZSteps++
			for _, s := range ref.Seeds {
				z = append(z, sampling.StepNoise(s, p.Step, per)...)
			}
		}
	}
	var imgs []float32
	if mc.Text.On() {
		imgs, err = g.GeneratePrompts(ref.Prompts, ref.Seeds, opts)
	} else {
		classes := make([]int, batch)
		for i, cl := range ref.Cond {
			classes[i] = int(cl)
		}
		imgs, err = g.Generate(classes, ref.Seeds, opts)
	}
	if err != nil {
		return err
	}
	sc, _ := g.Config(opts)
	ref.SampleNote = fmt.Sprintf("%d %s steps, cfg %g: the images of fewstep sample -model for seeds 0…%d", sc.Steps, sc.Sampler, sc.CFG, batch-1)
	files := map[string][]float32{"x.bin": x, "pred.bin": pred, "x_T.bin": x, "images.bin": imgs}
	ref.X, ref.Pred, ref.XT, ref.Images = "x.bin", "pred.bin", "x_T.bin", "images.bin"
	if ref.ZSteps > 0 {
		files["z.bin"], ref.Z = z, "z.bin"
	}
	for name, v := range files {
		buf := make([]byte, 4*len(v))
		for i, f := range v {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(f))
		}
		if err := checkpoints.WriteFileAtomic(filepath.Join(dir, name), buf, 0o644); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(ref, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("wrote the interop reference to %s\n", dir)
	return checkpoints.WriteFileAtomic(filepath.Join(dir, "reference.json"), append(js, '\n'), 0o644)
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
