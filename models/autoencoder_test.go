package models

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestKLMatchesFloat64: KL(N(μ, e^v) ‖ N(0, I)) per example against ½·Σ(μ² + e^v − 1 − v) in
// float64, and 0 exactly for the standard normal (μ = 0, v = 0).
func TestKLMatchesFloat64(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(4, 2))
	const n = 2 * 2 * 3 * 4
	mu, lv := make([]float32, n), make([]float32, n)
	for i := range mu {
		mu[i], lv[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	got := model.MustNewExec(backend, model.NewStore(), func(scope *model.Scope, m, v *Node) *Node {
		return KL(m, v)
	}).MustCall1(tensors.FromFlatDataAndDimensions(mu, 2, 2, 3, 4), tensors.FromFlatDataAndDimensions(lv, 2, 2, 3, 4))
	kl := tensors.MustCopyFlatData[float32](got)
	for b := range 2 {
		var want float64
		for i := b * n / 2; i < (b+1)*n/2; i++ {
			m, v := float64(mu[i]), float64(lv[i])
			want += 0.5 * (m*m + math.Exp(v) - 1 - v)
		}
		if math.Abs(float64(kl[b])-want) > 1e-5*math.Max(1, want) {
			t.Fatalf("example %d: KL %g, float64 %g", b, kl[b], want)
		}
	}
	zero := model.MustNewExec(backend, model.NewStore(), func(scope *model.Scope, m *Node) *Node {
		return KL(m, ZerosLike(m))
	}).MustCall1(tensors.FromFlatDataAndDimensions(make([]float32, 8), 1, 2, 2, 2))
	if v := tensors.MustCopyFlatData[float32](zero)[0]; v != 0 {
		t.Fatalf("KL of the standard normal = %g, want 0", v)
	}
}

// TestAutoencoderShapes: f = 4 (3 levels) maps [2, 16, 16, 3] to mean and log-variance [2, 4, 4, 4]
// and back to [2, 16, 16, 3]; f = 8 to [2, 2, 2, 4]; the posterior sample with eps = 0 is the mean;
// groups that do not divide the widths are refused.
func TestAutoencoderShapes(t *testing.T) {
	backend := testBackend(t)
	for _, tc := range []struct {
		mult []int
		side int
	}{{[]int{1, 2, 2}, 4}, {[]int{1, 1, 2, 2}, 2}} {
		cfg := AutoencoderConfig{Channels: 8, ChannelMult: tc.mult, NumResBlocks: 1, LatentChannels: 4, Groups: 4, DiscStart: -1}
		a, err := NewAutoencoder(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 2*16*16*3)
		for i := range x {
			x[i] = float32(math.Sin(float64(i) * 0.1))
		}
		outs := model.MustNewExec(backend, model.NewStore(), func(scope *model.Scope, xn *Node) []*Node {
			m, v := a.Encode(scope.In("encoder"), xn)
			z := SamplePosterior(m, v, ZerosLike(m))
			return []*Node{m, v, a.Decode(scope.In("decoder"), z, 3), Sub(z, m)}
		}).MustCall(tensors.FromFlatDataAndDimensions(x, 2, 16, 16, 3))
		for i, want := range [][]int{{2, tc.side, tc.side, 4}, {2, tc.side, tc.side, 4}, {2, 16, 16, 3}} {
			if got := outs[i].Shape().Dimensions; len(got) != 4 || got[1] != want[1] || got[3] != want[3] {
				t.Fatalf("f=%d output %d: shape %v, want %v", cfg.Factor(), i, got, want)
			}
		}
		for _, d := range tensors.MustCopyFlatData[float32](outs[3]) {
			if d != 0 {
				t.Fatalf("posterior sample with eps 0 differs from the mean by %g", d)
			}
		}
	}
	bad := AutoencoderConfig{Channels: 8, ChannelMult: []int{1, 2, 2}, NumResBlocks: 1, LatentChannels: 4, Groups: 3, DiscStart: -1}
	if err := bad.Validate(); err == nil {
		t.Fatal("groups 3 of 8 channels accepted")
	}
}
