// Package generate is fewstep's public Go API for inference: load an exported model file
// (`fewstep export`, package export) and generate images from it, with nothing else on disk.
//
//	g, err := generate.Load("model.safetensors")
//	imgs, err := g.Generate([]int{3, 3, 7}, []uint64{0, 1, 2}, generate.Options{})
//	png, err := g.Grid(imgs, 3)
//
// Image i starts from the noise of seeds[i] alone (sampling.NoiseForSeed), so a given (class,
// seed) pair gives the same image at any batch size, and the same image as `fewstep sample` on
// the run the file was exported from. The sampler, step count, spacing and guidance scale default
// to the file's recommended ones (the run's sample section).
//
// Layer 2: it imports export and sampling (layer 1), models and checkpoints (layer 0) and
// internal/engine (the backend: pure Go by default, GOMLX_BACKEND to choose another); only
// commands and users import it.
package generate
