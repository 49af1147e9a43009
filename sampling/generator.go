package sampling

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// PlanStep is one network evaluation of a sampler's schedule: the time, the host coefficients of
// CombineStep, and whether it is guided, noise-corrected, draws fresh noise z (stream Step+1 of
// the image's seed) or uses the previous x̂0 as aux (DPM-Solver++ 2M).
type PlanStep struct {
	Step            int
	T               float64
	Coef            [5]float64
	Guided          bool
	NoiseCorrection bool
	Noise           bool
	AuxPrevX0       bool
}

// Plan returns the evaluations of the sampler's whole schedule, for samplers with one network
// evaluation per step (all but heun): what Sample runs, step by step, as data.
func (s *Sampler) Plan() ([]PlanStep, error) {
	sched := s.m.Den.Schedule
	var plan []PlanStep
	hPrev := math.NaN()
	for i := 0; i+1 < len(s.times); i++ {
		t, tn := s.times[i], s.times[i+1]
		p := PlanStep{Step: i, T: t, Guided: s.cfg.guidedAt(t), NoiseCorrection: s.nc && i == 0 && t == s.m.TMax}
		var c coefs
		switch s.cfg.Sampler {
		case "ddim", "sde":
			eta := s.cfg.Eta
			if s.cfg.Sampler == "sde" {
				eta = 1
			}
			c = ddimCoefs(sched, t, tn, eta)
		case "renoise":
			c[1], c[4] = sched.AlphaSigma(tn)
		case "euler":
			c = eulerCoefs(sched, t, tn)
		case "dpmpp-2m":
			c, hPrev = dpmpp2MCoefs(sched, t, tn, hPrev)
			p.AuxPrevX0 = true
		default:
			return nil, fmt.Errorf("sampling: sampler %s has no single-evaluation plan (use ddim, sde, renoise, euler or dpmpp-2m)", s.cfg.Sampler)
		}
		p.Coef, p.Noise = c, c[4] != 0
		plan = append(plan, p)
	}
	return plan, nil
}

// PlanNoises is the number of fresh-noise tensors a plan draws (the z input of GeneratorGraph).
func PlanNoises(plan []PlanStep) int {
	return len(slices.DeleteFunc(slices.Clone(plan), func(p PlanStep) bool { return !p.Noise }))
}

// StepNoise is the fresh noise z of sampling step `step` of one image (what Sample draws): n
// standard normals of the image's seed.
func StepNoise(seed uint64, step, n int) []float32 { return noiseStream(seed, uint64(step+1), n) }

// GeneratorGraph is the sampler's whole schedule as one graph, times and coefficients baked in as
// constants (the K-step generator that `fewstep export -format onnx` writes): the steps of Plan
// from x_T, then the final clamp of Sample (none for latents, Model.Latent). xT: [B, H, W, C];
// cond: [B] int32; z: [PlanNoises, B, H, W, C] (nil when the plan draws none) → images
// [B, H, W, C] in [-1, 1] (latents unbounded).
func (s *Sampler) GeneratorGraph(root *model.Scope, xT, cond, z *Node) *Node {
	plan, err := s.Plan()
	if err != nil {
		panic(err)
	}
	g, bsz := xT.Graph(), xT.Shape().Dimensions[0]
	w := Scalar(g, dtypes.Float32, s.cfg.CFG)
	x, zero := xT, ZerosLike(xT)
	var prevX0 *Node
	noise := 0
	for i, p := range plan {
		var scope *model.Scope
		if i == 0 {
			scope = root.In("%s", s.m.Scope)
		} else {
			scope = root.Shared("%s", s.m.Scope)
		}
		t := Const(g, slices.Repeat([]float32{float32(p.T)}, bsz))
		x0, eps := GuidedX0Eps(s.m.Den, scope, x, t, cond, w, s.m.NullClass, p.Guided)
		nc := ScalarZero(g, dtypes.Float32)
		if p.NoiseCorrection {
			nc = ScalarOne(g, dtypes.Float32)
		}
		x0, eps = ClipAndCorrect(s.m.Den.Schedule, x, x0, eps, t, nc, s.cfg.ClipX0 && !s.m.Latent)
		aux, zk := zero, zero
		if p.AuxPrevX0 && prevX0 != nil {
			aux = prevX0
		}
		if p.Noise {
			zk = Reshape(Slice(z, AxisElem(noise)), xT.Shape().Dimensions...)
			noise++
		}
		coef := make([]float32, 5)
		for j, c := range p.Coef {
			coef[j] = float32(c)
		}
		x = CombineStep(x, x0, eps, aux, zk, Const(g, coef))
		prevX0 = x0
	}
	if s.m.Latent {
		return x
	}
	return ClipScalar(x, -1, 1)
}
