package sampling

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// Sampler generates images with one compiled step executor per batch shape; times and the guidance
// scale enter as tensors. Its graph is marked as training so that variables are graph parameters,
// read at every call: a Sampler built before training sees the trained weights (gomlx-notes trap 2).
type Sampler struct {
	cfg       Config
	den       *models.Denoiser
	nullClass int
	tMax      float64
	exec      *model.Exec
}

// NewSampler returns a sampler of den whose weights live under scopeName ("ema" or "model") of store.
// nullClass is the class index meaning "no condition".
func NewSampler(backend compute.Backend, store *model.Store, den *models.Denoiser, scopeName string, nullClass int, tMax float64, cfg Config) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sampler{cfg: cfg, den: den, nullClass: nullClass, tMax: tMax}
	guide := cfg.CFG != 1
	exec, err := model.NewExec(backend, store, func(root *model.Scope, x, t, tNext, cond, w *Node) *Node {
		root.SetTraining(x.Graph(), true) // variables as parameters, never baked constants
		x0, eps := GuidedX0Eps(den, root.In("%s", scopeName), x, t, cond, w, nullClass, guide)
		return DDIMStep(den.Schedule, x, x0, eps, t, tNext, cfg.ClipX0)
	})
	if err != nil {
		return nil, err
	}
	s.exec = exec
	return s, nil
}

// NoiseForSeed is the initial noise x_T of one image: n standard normals from a PCG seeded by seed alone.
func NoiseForSeed(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// Sample generates len(seeds) images of side h×w with c channels; image i starts from
// NoiseForSeed(seeds[i]) and is conditioned on classes[i]. Returns [N, H, W, C] values in [-1, 1]
// (clamped).
func (s *Sampler) Sample(seeds []uint64, classes []int32, h, w, c int) ([]float32, error) {
	if len(seeds) != len(classes) {
		return nil, fmt.Errorf("sampling: %d seeds but %d classes", len(seeds), len(classes))
	}
	per := h * w * c
	out := make([]float32, 0, len(seeds)*per)
	for start := 0; start < len(seeds); start += s.cfg.BatchSize {
		end := min(start+s.cfg.BatchSize, len(seeds))
		imgs, err := s.sampleBatch(seeds[start:end], classes[start:end], h, w, c)
		if err != nil {
			return nil, err
		}
		out = append(out, imgs...)
	}
	for i, v := range out {
		out[i] = min(max(v, -1), 1)
	}
	return out, nil
}

func (s *Sampler) sampleBatch(seeds []uint64, classes []int32, h, w, c int) ([]float32, error) {
	bsz, per := len(seeds), h*w*c
	xs := make([]float32, 0, bsz*per)
	for _, seed := range seeds {
		xs = append(xs, NoiseForSeed(seed, per)...)
	}
	x := tensors.FromFlatDataAndDimensions(xs, bsz, h, w, c)
	cond := tensors.FromFlatDataAndDimensions(append([]int32(nil), classes...), bsz)
	w32 := tensors.FromScalar(float32(s.cfg.CFG))
	times := UniformTimes(s.cfg.Steps, s.tMax)
	for i := 0; i+1 < len(times); i++ {
		t := tensors.FromScalarAndDimensions(float32(times[i]), bsz)
		tNext := tensors.FromScalarAndDimensions(float32(times[i+1]), bsz)
		next, err := s.exec.Call1(x, t, tNext, cond, w32)
		if err != nil {
			return nil, fmt.Errorf("sampling step %d (t=%.4f): %w", i, times[i], err)
		}
		x = next
	}
	return tensors.CopyFlatData[float32](x)
}
