package sampling

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// TestGeneratorGraphMatchesSample: the whole schedule as one graph (the ONNX generator) gives the
// images of Sample from the same x_T and step noises, for deterministic, stochastic, multistep
// and guided samplers; heun has no plan.
func TestGeneratorGraphMatchesSample(t *testing.T) {
	sched := models.DefaultDiffusionConfig().Sched()
	seeds, classes := []uint64{3, 4, 5}, []int32{0, 2, 1}
	const h, w, c = 1, 2, 2
	per := h * w * c
	for _, sc := range []struct {
		sampler string
		steps   int
		cfg     float64
	}{{"ddim", 4, 1}, {"renoise", 3, 1}, {"sde", 4, 1}, {"dpmpp-2m", 5, 1}, {"euler", 4, 1}, {"ddim", 3, 1.5}} {
		cfg := DefaultConfig()
		cfg.Sampler, cfg.Steps, cfg.CFG, cfg.BatchSize = sc.sampler, sc.steps, sc.cfg, 8
		backend := testBackend(t)
		smp, err := NewSampler(backend, model.NewStore(), Model{Den: testGauss.denoiser(sched), Scope: "g", NullClass: 3, TMax: 1}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want, err := smp.Sample(seeds, classes, h, w, c)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := smp.Plan()
		if err != nil {
			t.Fatal(err)
		}
		var xT, z []float32
		for _, s := range seeds {
			xT = append(xT, NoiseForSeed(s, per)...)
		}
		nz := PlanNoises(plan)
		for _, p := range plan {
			if !p.Noise {
				continue
			}
			for _, s := range seeds {
				z = append(z, StepNoise(s, p.Step, per)...)
			}
		}
		if nz == 0 {
			z = make([]float32, len(xT))
			nz = 1
		}
		e, err := model.NewExec(backend, model.NewStore(), func(root *model.Scope, x, cond, zz *Node) *Node {
			if PlanNoises(plan) == 0 {
				zz = nil
			}
			return smp.GeneratorGraph(root, x, cond, zz)
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Call1(tensors.FromFlatDataAndDimensions(xT, len(seeds), h, w, c), tensors.FromFlatDataAndDimensions(classes, len(seeds)),
			tensors.FromFlatDataAndDimensions(z, nz, len(seeds), h, w, c))
		if err != nil {
			t.Fatal(err)
		}
		got := tensors.MustCopyFlatData[float32](out)
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Fatalf("%+v: value %d: generator %g, Sample %g", sc, i, got[i], want[i])
			}
		}
	}
	cfg := DefaultConfig()
	cfg.Sampler = "heun"
	smp, err := NewSampler(testBackend(t), model.NewStore(), Model{Den: testGauss.denoiser(sched), Scope: "g", TMax: 1}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := smp.Plan(); err == nil {
		t.Fatal("heun has a plan")
	}
}
