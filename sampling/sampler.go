package sampling

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// Model is what a Sampler needs to know about the network it samples.
type Model struct {
	Den       *models.Denoiser
	Scope     string // variable scope of the weights: "ema", "model", …
	NullClass int    // class index meaning "no condition"
	// CondWidth is the number of int32 condition values per image: 0 or 1 for a class index,
	// 1+L for a text model (models.Config.CondWidth: the class, then L caption token ids).
	CondWidth int
	TMax      float64 // start time of sampling
	Distilled bool    // a few-step student (turns noise_correction "auto" on for eps-prediction)
	// StudentTimes are a distilled student's K training times (distill.student_times, or its
	// trailing times), the "student" spacing; nil for other models.
	StudentTimes []float64
	// Latent marks a denoiser of latents (fewstep data encode rows: unbounded, unit-variance
	// values, decoded afterwards): x̂0 is never clipped to [-1, 1] and the samples never clamped,
	// whatever sample.clip_x0 says — those bounds are the pixels'.
	Latent bool
}

// Sampler generates images with one compiled executor per (guidance on/off, batch shape); times
// enter only through host-computed step coefficients and the time tensor, so nothing recompiles per
// step or per step count. Its graph is marked as training so that variables are graph parameters,
// read at every call: a Sampler built before training sees the trained weights (gomlx-notes trap 2).
type Sampler struct {
	cfg     Config
	m       Model
	backend compute.Backend
	store   *model.Store
	times   []float64
	nc      bool
	execs   map[bool]*model.Exec
	// forceGuided builds the guided graph even where guidedAt says no (tests: w = 1 through CFG).
	forceGuided bool
}

// NewSampler returns a sampler of m whose weights live in store; errors name the config key or the
// schedule file.
func NewSampler(backend compute.Backend, store *model.Store, m Model, cfg Config) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	times, err := Times(cfg, m.Den.Schedule, m.TMax, m.StudentTimes)
	if err != nil {
		return nil, err
	}
	nc := cfg.NoiseCorrection == "on" || (cfg.NoiseCorrection == "auto" && m.Distilled && m.Den.Prediction == models.PredEps)
	return &Sampler{cfg: cfg, m: m, backend: backend, store: store, times: times, nc: nc, execs: map[bool]*model.Exec{}}, nil
}

// Times returns the n+1 times of the schedule (t_n = 0).
func (s *Sampler) Times() []float64 { return append([]float64(nil), s.times...) }

// NoiseCorrection reports whether the first step replaces ε̂ by x_T.
func (s *Sampler) NoiseCorrection() bool { return s.nc }

// NFE is the number of network evaluations per image: one per denoiser call, two when guided
// (the null half of the batch counts), Heun's corrector included.
func (s *Sampler) NFE() int {
	nfe := 0
	count := func(t float64) {
		nfe++
		if s.cfg.guidedAt(t) {
			nfe++
		}
	}
	for i := 0; i+1 < len(s.times); i++ {
		count(s.times[i])
		if s.cfg.Sampler == "heun" && s.times[i+1] > 0 {
			count(s.times[i+1])
		}
	}
	return nfe
}

// exec returns the executor (x, t, cond, w, aux, z, coef, nc) → (x', x̂0), built on first use.
func (s *Sampler) exec(guided bool) (*model.Exec, error) {
	if e, ok := s.execs[guided]; ok {
		return e, nil
	}
	den, clip := s.m.Den, s.cfg.ClipX0 && !s.m.Latent
	e, err := model.NewExec(s.backend, s.store, func(root *model.Scope, in []*Node) []*Node {
		x, t, cond, w, aux, z, coef, nc := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7]
		root.SetTraining(x.Graph(), true) // variables as parameters, never baked constants
		x0, eps := GuidedX0Eps(den, root.In("%s", s.m.Scope), x, t, cond, w, s.m.NullClass, guided)
		x0, eps = ClipAndCorrect(den.Schedule, x, x0, eps, t, nc, clip)
		return []*Node{CombineStep(x, x0, eps, aux, z, coef), x0}
	})
	if err != nil {
		return nil, err
	}
	s.execs[guided] = e
	return e, nil
}

// TextCond builds the condition rows of a text model: for image i, the class classes[i] (the null
// class for caption-only models), then tokens[i] padded with 0 (or truncated) to maxTokens.
// Result: [N, 1+maxTokens] flattened.
func TextCond(classes []int32, tokens [][]int32, maxTokens int) []int32 {
	out := make([]int32, len(classes)*(1+maxTokens))
	for i, c := range classes {
		row := out[i*(1+maxTokens) : (i+1)*(1+maxTokens)]
		row[0] = c
		copy(row[1:], tokens[i])
	}
	return out
}

// NoiseForSeed is the initial noise x_T of one image: n standard normals from a PCG seeded by seed alone.
func NoiseForSeed(seed uint64, n int) []float32 {
	return noiseStream(seed, 0, n)
}

// noiseStream is stream k of an image's noise (0: x_T; k ≥ 1: the fresh noise of step k−1).
func noiseStream(seed, k uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15+k*0x2545f4914f6cdd1d))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// Sample generates len(seeds) images of side h×w with c channels; image i starts from
// NoiseForSeed(seeds[i]) (and its step noises from the same seed) and is conditioned on
// cond[i·W : (i+1)·W] with W = Model.CondWidth (1: the class; a text model: the class, then the
// caption's token ids, see TextCond). Returns [N, H, W, C] values in [-1, 1] (clamped).
func (s *Sampler) Sample(seeds []uint64, cond []int32, h, w, c int) ([]float32, error) {
	out, err := s.SampleRaw(seeds, cond, h, w, c)
	if s.m.Latent {
		return out, err // latents are not bounded (Model.Latent)
	}
	for i, v := range out {
		out[i] = min(max(v, -1), 1)
	}
	return out, err
}

// SampleRaw is Sample without the final clamp (for exact tests on unbounded data).
func (s *Sampler) SampleRaw(seeds []uint64, cond []int32, h, w, c int) ([]float32, error) {
	cw := max(s.m.CondWidth, 1)
	if len(seeds)*cw != len(cond) {
		return nil, fmt.Errorf("sampling: %d seeds need %d condition values (%d per image), got %d", len(seeds), len(seeds)*cw, cw, len(cond))
	}
	per := h * w * c
	out := make([]float32, 0, len(seeds)*per)
	for start := 0; start < len(seeds); start += s.cfg.BatchSize {
		end := min(start+s.cfg.BatchSize, len(seeds))
		imgs, err := s.sampleBatch(seeds[start:end], cond[start*cw:end*cw], h, w, c)
		if err != nil {
			return nil, err
		}
		out = append(out, imgs...)
	}
	return out, nil
}

// batchState holds one batch's constant inputs.
type batchState struct {
	s              *Sampler
	seeds          []uint64
	dims           []int
	cond, w, zeros *tensors.Tensor
}

// call runs one executor step at time t.
func (b *batchState) call(x *tensors.Tensor, t float64, aux, z *tensors.Tensor, c coefs, nc bool) (*tensors.Tensor, *tensors.Tensor, error) {
	e, err := b.s.exec(b.s.cfg.guidedAt(t) || b.s.forceGuided)
	if err != nil {
		return nil, nil, err
	}
	if aux == nil {
		aux = b.zeros
	}
	if z == nil {
		z = b.zeros
	}
	c32 := make([]float32, len(c))
	for i, v := range c {
		c32[i] = float32(v)
	}
	ncv := float32(0)
	if nc {
		ncv = 1
	}
	tt := tensors.FromScalarAndDimensions(float32(t), b.dims[0])
	outs, err := e.Exec(x, tt, b.cond, b.w, aux, z, tensors.FromFlatDataAndDimensions(c32, len(c32)), tensors.FromScalar(ncv))
	if err != nil {
		return nil, nil, err
	}
	return outs[0], outs[1], nil
}

// stepNoise is the fresh noise z of step i for every image of the batch.
func (b *batchState) stepNoise(i int) *tensors.Tensor {
	per := b.dims[1] * b.dims[2] * b.dims[3]
	zs := make([]float32, 0, len(b.seeds)*per)
	for _, seed := range b.seeds {
		zs = append(zs, noiseStream(seed, uint64(i+1), per)...)
	}
	return tensors.FromFlatDataAndDimensions(zs, b.dims...)
}

func (s *Sampler) sampleBatch(seeds []uint64, cond []int32, h, w, c int) ([]float32, error) {
	bsz, per := len(seeds), h*w*c
	xs := make([]float32, 0, bsz*per)
	for _, seed := range seeds {
		xs = append(xs, NoiseForSeed(seed, per)...)
	}
	condDims := []int{bsz}
	if s.m.CondWidth > 1 {
		condDims = append(condDims, s.m.CondWidth)
	}
	condT := tensors.FromFlatDataAndDimensions(append([]int32(nil), cond...), condDims...)
	b := &batchState{s: s, seeds: seeds, dims: []int{bsz, h, w, c},
		cond:  condT,
		w:     tensors.FromScalar(float32(s.cfg.CFG)),
		zeros: tensors.FromFlatDataAndDimensions(make([]float32, bsz*per), bsz, h, w, c)}
	x := tensors.FromFlatDataAndDimensions(xs, bsz, h, w, c)
	sched := s.m.Den.Schedule
	var prevX0 *tensors.Tensor
	hPrev := math.NaN()
	for i := 0; i+1 < len(s.times); i++ {
		t, tn := s.times[i], s.times[i+1]
		nc := s.nc && i == 0 && t == s.m.TMax
		var err error
		var x0 *tensors.Tensor
		switch s.cfg.Sampler {
		case "ddim", "sde":
			eta := s.cfg.Eta
			if s.cfg.Sampler == "sde" {
				eta = 1
			}
			cf := ddimCoefs(sched, t, tn, eta)
			var z *tensors.Tensor
			if cf[4] != 0 {
				z = b.stepNoise(i)
			}
			x, _, err = b.call(x, t, nil, z, cf, nc)
		case "renoise":
			cf := coefs{0, 0, 0, 0, 0}
			cf[1], cf[4] = sched.AlphaSigma(tn)
			var z *tensors.Tensor
			if tn > 0 {
				z = b.stepNoise(i)
			}
			x, _, err = b.call(x, t, nil, z, cf, nc)
		case "euler":
			x, _, err = b.call(x, t, nil, nil, eulerCoefs(sched, t, tn), nc)
		case "heun":
			if tn == 0 { // EDM Alg. 1: the last step (to σ = 0) is a plain Euler step
				x, _, err = b.call(x, t, nil, nil, eulerCoefs(sched, t, tn), nc)
				break
			}
			var pred *tensors.Tensor
			if pred, _, err = b.call(x, t, nil, nil, eulerCoefs(sched, t, tn), nc); err == nil {
				x, _, err = b.call(pred, tn, x, nil, heunCorrectorCoefs(sched, t, tn), false)
			}
		case "dpmpp-2m":
			var cf coefs
			cf, hPrev = dpmpp2MCoefs(sched, t, tn, hPrev)
			x, x0, err = b.call(x, t, prevX0, nil, cf, nc)
			prevX0 = x0
		default:
			err = fmt.Errorf("sample.sampler: unknown value %q", s.cfg.Sampler)
		}
		if err != nil {
			return nil, fmt.Errorf("sampling step %d (t=%.4f): %w", i, t, err)
		}
	}
	return tensors.CopyFlatData[float32](x)
}
