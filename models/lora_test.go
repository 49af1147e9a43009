package models

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestLoRATargets: layer kinds pick the right paths of the U-Net and the DiT (not the caption
// encoder's), path patterns pick any, and bad targets are refused naming the key.
func TestLoRATargets(t *testing.T) {
	c := LoRAConfig{Rank: 2, Targets: []string{"attention", "conv"}}
	for p, want := range map[string]bool{
		"down0/res0/conv1": true, "mid/res1/conv2": true, "down1/attn0/qkv": true, "mid/attn/proj": true, "mid/cross/q": true,
		"block3/attn/qkv": true, "block0/attn/out": true, "block1/cross/k": true, "block1/mlp1": false, "down0/res0/skip": false,
		"embed/time0": false, "down0/res0/emb": false, "text/layer0/attn/q": false, "stem": false, "out/conv": false,
	} {
		if got := c.TargetsLayer(p); got != want {
			t.Errorf("attention+conv: %s targeted %v, want %v", p, got, want)
		}
	}
	c.Targets = []string{"mlp", "time", "skip", "text/layer*/attn/*"}
	for p, want := range map[string]bool{"block1/mlp2": true, "embed/time1": true, "time0": true, "down1/res0/emb": true,
		"down1/res0/skip": true, "text/layer0/attn/q": true, "text/layer0/mlp1": false, "down0/res0/conv1": false} {
		if got := c.TargetsLayer(p); got != want {
			t.Errorf("mlp+time+skip+pattern: %s targeted %v, want %v", p, got, want)
		}
	}
	if (LoRAConfig{Targets: []string{"attention"}}).TargetsLayer("mid/attn/qkv") {
		t.Error("rank 0 targets a layer")
	}
	for _, bad := range []LoRAConfig{{Rank: -1}, {Rank: 2}, {Rank: 2, Targets: []string{"[x"}}, {Rank: 2, Targets: []string{"conv"}, Dropout: 1}, {Rank: 2, Targets: []string{"conv"}, Dropout: -0.1}} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "lora.") {
			t.Errorf("%+v: error %v, want one naming a lora key", bad, err)
		}
	}
}

// TestLoRAExactAndMerge: on the U-Net and the DiT (every weight random), adding adapters with
// up = 0 gives bit-identical outputs; with random up the output changes, and the same network
// without adapters on MergeLoRA's weights (W + (α/r)·down·up) matches within 1e-5 relative;
// only the targeted layers got adapters, of the documented shapes.
func TestLoRAExactAndMerge(t *testing.T) {
	backend := testBackend(t)
	unet := DefaultConfig()
	unet.BaseChannels, unet.ChannelMult, unet.AttentionResolutions, unet.AttentionHeads, unet.Groups = 8, []int{1, 2}, []int{8}, 2, 4
	unet.TimeFeatures, unet.EmbedDim, unet.PatchSize, unet.NumClasses = 8, 16, 2, 3
	dit := DefaultConfig()
	dit.Arch, dit.PatchSize, dit.TimeFeatures, dit.NumClasses = ArchDiT, 2, 8, 3
	dit.DiT = DiTConfig{Hidden: 8, Depth: 2, Heads: 2, MLPRatio: 2}
	for _, cfg := range []Config{unet, dit} {
		side := 16
		x := make([]float32, 2*side*side)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		run := func(c Config, store *model.Store) []float32 {
			t.Helper()
			net, err := NewBackbone(c, 3)
			if err != nil {
				t.Fatal(err)
			}
			out := model.MustNewExec(backend, store, func(scope *model.Scope, xn, tn, cn *Node) *Node {
				return net.Net(scope.In("model"), xn, tn, cn)
			}).MustCall1(tensors.FromFlatDataAndDimensions(x, 2, side, side, 1), []float32{0.3, 0.8}, []int32{1, 2})
			return tensors.MustCopyFlatData[float32](out)
		}
		store := model.NewStore()
		run(cfg, store)
		randomize(t, store, "", 0.2)
		base := run(cfg, store)
		lc := cfg
		lc.LoRA = &LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"attention", "mlp", "conv", "time"}}
		if same := run(lc, store); !slices.Equal(same, base) {
			t.Fatalf("%s: fresh adapters (up = 0) change the output", cfg.Arch)
		}
		adapters := 0
		for v := range store.IterVariables() {
			p := NetworkPath(v.Path())
			if layer, ok := strings.CutSuffix(p, "/lora_up"); ok {
				adapters++
				if !lc.LoRA.TargetsLayer(layer) {
					t.Errorf("%s: adapter on an untargeted layer %s", cfg.Arch, layer)
				}
				if d := v.Shape().Dimensions; d[0] != 2 {
					t.Errorf("%s: %s shape %v, want [rank=2, out]", cfg.Arch, p, d)
				}
			}
		}
		if adapters == 0 {
			t.Fatalf("%s: no adapters created", cfg.Arch)
		}
		randomize(t, store, "/lora_up", 0.3)
		adapted := run(lc, store)
		if slices.Equal(adapted, base) {
			t.Fatalf("%s: random adapters do not change the output", cfg.Arch)
		}
		weights := map[string]*tensors.Tensor{}
		for v := range store.IterVariables() {
			weights[NetworkPath(v.Path())] = v.MustValue()
		}
		if err := MergeLoRA(weights, lc.LoRA.Scale(), 1); err != nil {
			t.Fatal(err)
		}
		merged := model.NewStore()
		for name, w := range weights {
			if strings.Contains(name, "lora_") {
				t.Fatalf("%s: MergeLoRA left %s", cfg.Arch, name)
			}
			if _, err := merged.CreateVariable("/model/"+name, w); err != nil {
				t.Fatal(err)
			}
		}
		got := run(cfg, merged)
		var d, s float64
		for i := range got {
			d, s = math.Max(d, math.Abs(float64(got[i]-adapted[i]))), math.Max(s, math.Abs(float64(adapted[i])))
		}
		if d > 1e-5*s {
			t.Fatalf("%s: merged weights differ from the adapters by %g (scale %g)", cfg.Arch, d, s)
		}
	}
}

// randomize sets every variable whose path contains sub to N(0, std²).
func randomize(t *testing.T, store *model.Store, sub string, std float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	for v := range store.IterVariables() {
		if !strings.Contains(v.Path(), sub) {
			continue
		}
		vals := make([]float32, v.Shape().Size())
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * std)
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
}

// fmix32 is murmur3's 32-bit finalizer (the host mirror of LoRARankMask's hash).
func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// TestLoRARankMask: the rank-dropout mask equals its host definition exactly (every entry 0 or
// 1/(1−p)), keeps a fraction 1−p of the ranks over many steps, changes with the step and the layer,
// and is the same on a second execution.
func TestLoRARankMask(t *testing.T) { checkLoRARankMask(t, testBackend(t)) }

func checkLoRARankMask(t *testing.T, backend compute.Backend) {
	t.Helper()
	const rank, steps, p = 16, 200, 0.25
	keyA, keyB := loraMaskKey(7, "down0/res0/conv1"), loraMaskKey(7, "down0/res0/conv2")
	exec := MustNewExec(backend, func(step *Node) []*Node {
		return []*Node{LoRARankMask(step, keyA, rank, p), LoRARankMask(step, keyB, rank, p)}
	})
	kept, sameAB := 0, 0
	var prev []float32
	changed := false
	for s := 1; s <= steps; s++ {
		out := exec.MustExec(float32(s))
		a, b := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
		again := tensors.MustCopyFlatData[float32](exec.MustExec(float32(s))[0])
		if !slices.Equal(a, again) {
			t.Fatalf("step %d: the mask differs between two executions", s)
		}
		for i := range rank {
			h := fmix32(uint32(s)*0x9e3779b1 ^ keyA ^ uint32(i+1)*0x85ebca77)
			want := float32(0)
			if float64(h>>8)/(1<<24) >= p {
				want = float32(1 / (1 - p))
				kept++
			}
			if a[i] != want {
				t.Fatalf("step %d rank %d: mask %g, host hash gives %g", s, i, a[i], want)
			}
		}
		if slices.Equal(a, b) {
			sameAB++
		}
		if prev != nil && !slices.Equal(prev, a) {
			changed = true
		}
		prev = a
	}
	if frac := float64(kept) / (rank * steps); math.Abs(frac-(1-p)) > 0.03 {
		t.Errorf("kept fraction %.4f, want %.2f ± 0.03", frac, 1-p)
	}
	if !changed || sameAB > steps/20 {
		t.Errorf("masks do not vary: changed with the step %v, equal across layers at %d of %d steps", changed, sameAB, steps)
	}
}
