package generate_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/generate"
	"github.com/fewstep/fewstep/models"
)

// Example exports a tiny randomly initialized model (a trained one comes from `fewstep export`),
// loads it and generates two images of classes 3 and 7 with the file's recommended sampler.
func Example() {
	dir, err := os.MkdirTemp("", "fewstep-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	mc := models.DefaultConfig()
	mc.PatchSize, mc.BaseChannels, mc.ChannelMult, mc.Groups, mc.AttentionHeads = 2, 8, []int{1, 2}, 4, 2
	m := &export.Model{Model: mc, Diffusion: models.DefaultDiffusionConfig(), Data: data.DefaultConfig(),
		Sample: export.Sampling{Sampler: "ddim", Steps: 2, CFG: 2, Spacing: "trailing"},
		Source: export.Source{Run: "example", Weights: export.WeightsEMA}}
	if err := m.RandomWeights(1); err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := export.Write(path, m); err != nil {
		panic(err)
	}

	g, err := generate.Load(path)
	if err != nil {
		panic(err)
	}
	imgs, err := g.Generate([]int{3, 7}, []uint64{0, 1}, generate.Options{})
	if err != nil {
		panic(err)
	}
	h, w, c := g.Shape()
	fmt.Printf("%d images of %dx%dx%d: %d values\n", len(imgs)/(h*w*c), h, w, c, len(imgs))
	png, err := g.Grid(imgs, 2)
	if err != nil {
		panic(err)
	}
	fmt.Printf("grid PNG: %t\n", string(png[1:4]) == "PNG")
	// Output:
	// 2 images of 32x32x1: 2048 values
	// grid PNG: true
}
