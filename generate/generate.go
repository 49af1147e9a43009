package generate

import (
	"fmt"
	"maps"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
)

// scope is the variable scope the file's weights are loaded into; a latent model's decoder goes
// under firstStageScope/decoder.
const (
	scope           = "net"
	firstStageScope = "first_stage"
)

// Options override the file's recommended sampler; zero values keep the file's.
type Options struct {
	// Steps is the number of solver steps.
	Steps int
	// Sampler is the solver: ddim, euler, heun, dpmpp-2m, sde or renoise.
	Sampler string
	// Spacing is the timestep spacing: trailing, leading, uniform, karras, logsnr or student (a
	// distilled model's own times, Model().StudentTimes, at their step count).
	Spacing string
	// CFG is the classifier-free guidance scale w (1: no guidance). The unconditional model
	// (w = 0) is class NumClasses, the null class, with any w.
	CFG float64
	// BatchSize is the number of images per executor call.
	BatchSize int
}

// Generator samples one exported model. It is not safe for concurrent use.
type Generator struct {
	m        *export.Model
	backend  compute.Backend
	store    *model.Store
	den      *models.Denoiser
	decoder  *sampling.Decoder // a latent model's first stage; nil for pixel models
	base     sampling.Config
	samplers map[string]*sampling.Sampler // by resolved sampling.Config, so executors compile once
}

// Load reads and validates an exported model file (export.ReadModel) and returns its generator
// on the backend of internal/engine: the pure-Go backend unless GOMLX_BACKEND names another.
func Load(path string) (*Generator, error) {
	m, err := export.ReadModel(path)
	if err != nil {
		return nil, err
	}
	backend, err := engine.New()
	if err != nil {
		return nil, err
	}
	g, err := New(m, backend)
	if err != nil {
		return nil, fmt.Errorf("generate: %s: %w", path, err)
	}
	return g, nil
}

// New returns the generator of an already read model on backend.
func New(m *export.Model, backend compute.Backend) (*Generator, error) {
	base := sampling.DefaultConfig()
	if err := m.Sample.Decode(&base); err != nil {
		return nil, err
	}
	if err := base.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", export.KeySample, err)
	}
	den, unet, err := models.NewDenoiser(m.Model, m.Diffusion, 0)
	if err != nil {
		return nil, err
	}
	unet.Params().Frozen = true // every weight comes from the file
	store := model.NewStore()
	for _, name := range m.Names() {
		v, err := store.CreateVariable("/"+scope+"/"+name, m.Tensors[name])
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		v.Trainable = false
	}
	g := &Generator{m: m, backend: backend, store: store, den: den, base: base, samplers: map[string]*sampling.Sampler{}}
	if m.Latent != nil { // the first stage, in the same store (the ONNX generator decodes in-graph)
		for name, t := range m.Latent.Decoder {
			v, err := store.CreateVariable("/"+firstStageScope+"/decoder/"+name, t)
			if err != nil {
				return nil, fmt.Errorf("decoder tensor %s: %w", name, err)
			}
			v.Trainable = false
		}
		if g.decoder, err = sampling.NewDecoder(backend, store, m.Latent.Source, m.Latent.Tiny, m.Latent.Scale, firstStageScope, "decoder"); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Model is the exported model: configs, class names, sampling hints and provenance.
func (g *Generator) Model() *export.Model { return g.m }

// Shape is the side and channels of the generated images: [H, W, C] (decoded images for a latent
// model).
func (g *Generator) Shape() (h, w, c int) { return g.m.ImageShape() }

// Config is the sampling configuration Generate uses for opts: the file's sample section with
// opts' non-zero fields applied.
func (g *Generator) Config(opts Options) (sampling.Config, error) {
	sc := g.base
	if opts.Steps > 0 {
		sc.Steps = opts.Steps
	}
	if opts.Sampler != "" {
		sc.Sampler = opts.Sampler
	}
	if opts.Spacing != "" {
		sc.Spacing = opts.Spacing
	}
	if opts.CFG != 0 {
		sc.CFG = opts.CFG
	}
	if opts.BatchSize > 0 {
		sc.BatchSize = opts.BatchSize
	}
	if sc.Spacing == "list" && opts.Steps > 0 && opts.Steps != len(sc.Timesteps) {
		return sampling.Config{}, fmt.Errorf("generate: the spacing is a list of %d times; give Options.Spacing (e.g. trailing) to sample %d steps",
			len(sc.Timesteps), opts.Steps)
	}
	if err := sc.Validate(); err != nil {
		return sampling.Config{}, fmt.Errorf("generate: %w", err)
	}
	return sc, nil
}

// sampler returns the (cached) sampler of sc.
func (g *Generator) sampler(sc sampling.Config) (*sampling.Sampler, error) {
	key := fmt.Sprintf("%+v", sc)
	if s, ok := g.samplers[key]; ok {
		return s, nil
	}
	s, err := sampling.NewSampler(g.backend, g.store, sampling.Model{Den: g.den, Scope: scope, NullClass: g.m.Model.NumClasses,
		TMax: g.m.Diffusion.TMax, Distilled: g.m.Distilled, StudentTimes: g.m.StudentTimes, CondWidth: g.m.Model.CondWidth(), Latent: g.m.Latent != nil}, sc)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	g.samplers[key] = s
	return s, nil
}

// Generate returns len(seeds) images [N, H, W, C] (values in [-1, 1], row-major): image i of
// class classes[i] (0 … NumClasses−1, or NumClasses for the unconditional model) from the noise of
// seeds[i] alone. A text model (Model().Model.Text on) takes prompts: see GeneratePrompts.
func (g *Generator) Generate(classes []int, seeds []uint64, opts Options) ([]float32, error) {
	if g.m.Model.Text.On() {
		return nil, fmt.Errorf("generate: this model is conditioned on captions: use GeneratePrompts")
	}
	if len(classes) != len(seeds) {
		return nil, fmt.Errorf("generate: %d classes but %d seeds", len(classes), len(seeds))
	}
	cond := make([]int32, len(classes))
	for i, c := range classes {
		if c < 0 || c > g.m.Model.NumClasses {
			return nil, fmt.Errorf("generate: class %d of image %d is outside [0, %d] (%d = unconditional)", c, i, g.m.Model.NumClasses, g.m.Model.NumClasses)
		}
		cond[i] = int32(c)
	}
	return g.generate(cond, seeds, opts)
}

// GeneratePrompts is Generate for a text model: image i is prompted with prompts[i] ("" is the
// unconditional model) from the noise of seeds[i]. Prompt words outside the model's vocabulary
// (Model().Model.Text.Vocab) read as <unk>; PromptCond reports them.
func (g *Generator) GeneratePrompts(prompts []string, seeds []uint64, opts Options) ([]float32, error) {
	if len(prompts) != len(seeds) {
		return nil, fmt.Errorf("generate: %d prompts but %d seeds", len(prompts), len(seeds))
	}
	cond, _, err := g.PromptCond(prompts)
	if err != nil {
		return nil, err
	}
	return g.generate(cond, seeds, opts)
}

// PromptCond is the condition of a text model for prompts: [N, 1+L] int32 flattened, the null class
// then each prompt's token ids (the ONNX models' cond input), and the prompt words outside the
// vocabulary.
func (g *Generator) PromptCond(prompts []string) ([]int32, []string, error) {
	cond, unknown, err := sampling.PromptCond(g.m.Model, prompts, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("generate: %w", err)
	}
	return cond, unknown, nil
}

// generate samples images for condition rows cond (Model().Model.CondWidth() values each).
func (g *Generator) generate(cond []int32, seeds []uint64, opts Options) ([]float32, error) {
	sc, err := g.Config(opts)
	if err != nil {
		return nil, err
	}
	s, err := g.sampler(sc)
	if err != nil {
		return nil, err
	}
	h, w, c := g.m.InputShape()
	imgs, err := s.Sample(seeds, cond, h, w, c)
	if err == nil && g.decoder != nil {
		imgs, err = g.decoder.Decode(imgs, len(seeds))
	}
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return imgs, nil
}

// PNG encodes image i of a Generate result as PNG (gray or RGB).
func (g *Generator) PNG(imgs []float32, i int) ([]byte, error) {
	h, w, c := g.Shape()
	per := h * w * c
	if i < 0 || (i+1)*per > len(imgs) {
		return nil, fmt.Errorf("generate: image %d of a batch of %d values (%d per image)", i, len(imgs), per)
	}
	return sampling.ImagePNG(imgs[i*per:(i+1)*per], h, w, c)
}

// Grid lays out a Generate result in rows of cols images (2-pixel white borders) as one PNG.
func (g *Generator) Grid(imgs []float32, cols int) ([]byte, error) {
	h, w, c := g.Shape()
	if cols <= 0 || len(imgs)%(h*w*c) != 0 {
		return nil, fmt.Errorf("generate: grid of %d values in %d columns (%d per image)", len(imgs), cols, h*w*c)
	}
	return sampling.GridPNG(imgs, len(imgs)/(h*w*c), h, w, c, cols)
}

// ApplyLoRA merges the adapters of a LoRA file (`fewstep export -lora-only`, kohya-style) into
// the model's weights with the given strength: W += strength·(α/r)·down·up. Several files add up
// (an accelerator LoRA and a style LoRA). A layer the model lacks, or shapes that do not fit, are
// refused naming the tensor; the weights are unchanged then.
func (g *Generator) ApplyLoRA(path string, strength float64) error {
	f, err := export.ReadLoRA(path)
	if err != nil {
		return err
	}
	return g.setWeights(path, func(w map[string]*tensors.Tensor) error { return f.Apply(w, strength) })
}

// ApplyDelta adds strength·ΔW of a weight-delta file (`fewstep export -delta`, e.g. PeRFlow's
// accelerator delta) to the model's weights. A tensor the model lacks or shapes differently is
// refused naming it; the weights are unchanged then.
func (g *Generator) ApplyDelta(path string, strength float64) error {
	d, err := export.ReadDelta(path)
	if err != nil {
		return err
	}
	return g.setWeights(path, func(w map[string]*tensors.Tensor) error { return d.Apply(w, strength) })
}

// setWeights applies change to a copy of the model's weights and writes the changed ones back.
func (g *Generator) setWeights(path string, change func(map[string]*tensors.Tensor) error) error {
	weights := maps.Clone(g.m.Tensors)
	if err := change(weights); err != nil {
		return fmt.Errorf("generate: %s: %w", path, err)
	}
	for name, t := range weights {
		if t == g.m.Tensors[name] {
			continue
		}
		if err := g.store.GetVariable("/" + scope + "/" + name).SetValue(t); err != nil {
			return err
		}
		g.m.Tensors[name] = t
	}
	return nil
}
