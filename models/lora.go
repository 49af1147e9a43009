package models

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// LoRAConfig adds low-rank adapters to a denoiser's dense and conv layers (Hu et al., arXiv
// 2106.09685): a layer with weight W (dense [in, out], conv [k, k, in, out]) computes with
//
//	W' = W + (alpha/rank)·down·up,   down: [in, rank] (conv: [k, k, in, rank]), up: [rank, out]
//
// — the same map as y = W·x + (α/r)·up(down(x)) with down a k×k conv and up a 1×1 conv (kohya's
// conv LoRA) — with up zero-initialized, so a fresh adapter leaves the model exactly as it was.
// The adapters are the variables lora_down and lora_up next to the layer's own; a run that has
// them trains only them (trainer.MarkTrainable freezes the rest of /model).
type LoRAConfig struct {
	// Rank r of the adapters; 0 turns LoRA off.
	Rank int `mapstructure:"rank"`
	// Alpha scales the update by alpha/rank (kohya's network_alpha); 0 means alpha = rank.
	Alpha float64 `mapstructure:"alpha"`
	// Targets pick the layers: kinds — attention (q, k, v, qkv, proj/out of self- and
	// cross-attention), mlp (mlp1, mlp2), conv (the residual blocks' conv1, conv2), skip (1×1 skip
	// convs), time (the time-embedding MLP and the residual blocks' emb projections) — match in the
	// denoiser outside the caption encoder; any other entry is a path pattern (path.Match) against
	// the layer's path inside the network, e.g. "down*/res*/conv1" or "text/layer*/attn/*".
	Targets []string `mapstructure:"targets"`
	// Dropout is rank dropout: the probability that an adapter rank is left out of a training
	// step (kohya sd-scripts' rank_dropout, drawn per layer and step for the whole batch); the kept
	// ranks are scaled by 1/(1−p), so the update's expectation is the adapter's. Sampling,
	// evaluation and export use every rank. The mask is a counter-based hash of (step, seed, layer
	// path): exact resume holds (LoRARankMask).
	Dropout float64 `mapstructure:"dropout"`
}

// LoRAKinds are the layer kinds of LoRAConfig.Targets.
var LoRAKinds = []string{"attention", "mlp", "conv", "skip", "time"}

// DefaultLoRAConfig is off (rank 0); with a rank it adapts attention, MLPs and the residual
// blocks' convs at alpha = rank.
func DefaultLoRAConfig() LoRAConfig {
	return LoRAConfig{Targets: []string{"attention", "mlp", "conv"}}
}

// On reports whether adapters are configured.
func (c LoRAConfig) On() bool { return c.Rank > 0 }

// Scale is alpha/rank.
func (c LoRAConfig) Scale() float64 {
	if c.Alpha == 0 {
		return 1
	}
	return c.Alpha / float64(c.Rank)
}

// Validate checks every key; errors name it as "lora.<key>".
func (c LoRAConfig) Validate() error {
	switch {
	case c.Rank < 0:
		return fmt.Errorf("lora.rank: must be >= 0 (0: off), got %d", c.Rank)
	case c.Alpha < 0:
		return fmt.Errorf("lora.alpha: must be >= 0 (0: the rank), got %g", c.Alpha)
	case c.Dropout < 0 || c.Dropout >= 1:
		return fmt.Errorf("lora.dropout: must be in [0, 1), got %g", c.Dropout)
	case c.On() && len(c.Targets) == 0:
		return fmt.Errorf("lora.targets: empty; name layer kinds (%s) or path patterns", strings.Join(LoRAKinds, ", "))
	}
	for _, t := range c.Targets {
		if slices.Contains(LoRAKinds, t) {
			continue
		}
		if _, err := path.Match(t, ""); err != nil {
			return fmt.Errorf("lora.targets: %q is neither a layer kind (%s) nor a valid path pattern: %v", t, strings.Join(LoRAKinds, ", "), err)
		}
	}
	return nil
}

// TargetsLayer reports whether the layer at path p (inside the network, e.g. "down0/res1/conv1") gets
// an adapter.
func (c LoRAConfig) TargetsLayer(p string) bool {
	if !c.On() {
		return false
	}
	parts := strings.Split(p, "/")
	last := parts[len(parts)-1]
	inText := parts[0] == "text"
	for _, t := range c.Targets {
		var hit bool
		switch t {
		case "attention":
			hit = slices.Contains([]string{"q", "k", "v", "qkv", "proj", "out"}, last) && slices.ContainsFunc(parts[:len(parts)-1], func(s string) bool {
				return strings.HasPrefix(s, "attn") || s == "cross"
			})
		case "mlp":
			hit = last == "mlp1" || last == "mlp2"
		case "conv":
			hit = last == "conv1" || last == "conv2"
		case "skip":
			hit = last == "skip"
		case "time":
			hit = last == "time0" || last == "time1" || last == "emb"
		default:
			hit, _ = path.Match(t, p)
			if hit {
				return true
			}
			continue
		}
		if hit && !inText {
			return true
		}
	}
	return false
}

// loraWeight returns w (a dense [in, out] or conv [k, k, in, out] weight of the layer in scope)
// with the layer's adapter added when b.LoRA targets it: w + scale·reshape(down_flat·up).
func (b *Builder) loraWeight(scope *model.Scope, w *Node) *Node {
	if b.LoRA == nil || !b.LoRA.On() {
		return w
	}
	p := NetworkPath(scope.Scope())
	if !b.LoRA.TargetsLayer(p) {
		return w
	}
	dims := w.Shape().Dimensions
	out := dims[len(dims)-1]
	in := w.Shape().Size() / out
	r := b.LoRA.Rank
	// Adapters are created even by a frozen builder: a LoRA student or fine-tune starts from a base
	// without them (up = 0 keeps the base's function exactly).
	frozen := b.Frozen
	b.Frozen = false
	defer func() { b.Frozen = frozen }()
	down := b.Param(scope, w.Graph(), "lora_down", InitFanIn, 1, append(slices.Clone(dims[:len(dims)-1]), r)...)
	up := b.Param(scope, w.Graph(), "lora_up", InitZeros, 0, r, out)
	down = Reshape(down, in, r)
	if b.LoRA.Dropout > 0 && scope.IsTraining(w.Graph()) {
		if step, ok := scope.GetGraphParam(w.Graph(), TrainStepParam); ok {
			down = Mul(down, ExpandDims(LoRARankMask(step.(*Node), loraMaskKey(b.Seed, p), r, b.LoRA.Dropout), 0))
		}
	}
	delta := MatMul(down, up)
	return Add(w, MulScalar(Reshape(delta, dims...), b.LoRA.Scale()))
}

// TrainStepParam is the graph parameter (set on the root scope by the trainer's optimizer step)
// holding the step number, a float32 scalar node: the counter of LoRA rank dropout.
const TrainStepParam = "fewstep_train_step"

// loraMaskKey is the per-layer key of LoRARankMask: FNV-1a of the layer path, mixed with the seed.
func loraMaskKey(seed uint64, layerPath string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(layerPath); i++ {
		h = (h ^ uint32(layerPath[i])) * 16777619
	}
	return h ^ uint32(seed) ^ uint32(seed>>32)*0x27d4eb2f
}

// LoRARankMask is the rank-dropout mask of one layer at one training step: [rank] float32, each
// entry 0 (dropped, probability p) or 1/(1−p). step: a scalar node (integer-valued); the
// randomness is murmur3's 32-bit finalizer of step·0x9e3779b1 ⊕ key ⊕ (i+1)·0x85ebca77 (a counter
// hash: the same step and key give the same mask on every backend and after a resume).
func LoRARankMask(step *Node, key uint32, rank int, p float64) *Node {
	g := step.Graph()
	u32 := func(v uint32) *Node { return Const(g, v) }
	s := ConvertDType(step, dtypes.Uint32)
	idx := Add(Mul(Iota(g, shapes.Make(dtypes.Uint32, rank), 0), u32(0x85ebca77)), u32(0x85ebca77))
	h := BitwiseXor(BitwiseXor(Mul(s, u32(0x9e3779b1)), u32(key)), idx)
	h = BitwiseXor(h, BitwiseShiftRightLogicalScalar(h, uint32(16)))
	h = Mul(h, u32(0x85ebca6b))
	h = BitwiseXor(h, BitwiseShiftRightLogicalScalar(h, uint32(13)))
	h = Mul(h, u32(0xc2b2ae35))
	h = BitwiseXor(h, BitwiseShiftRightLogicalScalar(h, uint32(16)))
	u := MulScalar(ConvertDType(BitwiseShiftRightLogicalScalar(h, uint32(8)), dtypes.Float32), 1.0/(1<<24)) // U[0, 1)
	keep := GreaterOrEqual(u, Scalar(g, dtypes.Float32, p))
	return Where(keep, Scalar(g, dtypes.Float32, 1/(1-p)), ZerosLike(u))
}

// NetworkPath is a variable scope's path inside the network: the scope without its leading "/"
// and first element (the weight set: model, ema, teacher, net).
func NetworkPath(scope string) string {
	s := strings.TrimPrefix(scope, "/")
	if _, rest, ok := strings.Cut(s, "/"); ok {
		return rest
	}
	return ""
}

// loraOf is the Builder's LoRA of a config: nil when off.
func loraOf(cfg Config) *LoRAConfig {
	if cfg.LoRA == nil || !cfg.LoRA.On() {
		return nil
	}
	l := *cfg.LoRA
	return &l
}

// MergeLoRA folds the adapters of weights (paths inside the network: "<layer>/lora_down",
// "<layer>/lora_up") into their layers' weights ("<layer>/weight" or "<layer>/kernel"):
// W += strength·scale·down·up, with scale = alpha/rank of the adapter's config, and removes them.
// strength is the user's multiplier (sample -lora FILE:strength). Every adapter needs its layer;
// an error names the tensor otherwise.
func MergeLoRA(weights map[string]*tensors.Tensor, scale, strength float64) error {
	for name, down := range weights {
		layer, ok := strings.CutSuffix(name, "/lora_down")
		if !ok {
			continue
		}
		up, ok := weights[layer+"/lora_up"]
		if !ok {
			return fmt.Errorf("lora: %s has no %s/lora_up", name, layer)
		}
		wName := layer + "/weight"
		w, ok := weights[wName]
		if !ok {
			wName = layer + "/kernel"
			if w, ok = weights[wName]; !ok {
				return fmt.Errorf("lora: %s adapts %s, which has neither weight nor kernel", name, layer)
			}
		}
		merged, err := MergeAdapter(w, down, up, scale*strength)
		if err != nil {
			return fmt.Errorf("lora: %s: %w", layer, err)
		}
		weights[wName] = merged
		delete(weights, name)
		delete(weights, layer+"/lora_up")
	}
	for name := range weights {
		if strings.HasSuffix(name, "/lora_up") {
			return fmt.Errorf("lora: %s has no lora_down", name)
		}
	}
	return nil
}

// MergeAdapter is w + s·reshape(down_flat·up), computed in float64: w [..., out] (dense [in, out] or
// conv [k, k, in, out]), down [..., r] (the weight's leading axes), up [r, out].
func MergeAdapter(w, down, up *tensors.Tensor, s float64) (*tensors.Tensor, error) {
	wd, dd, ud := w.Shape().Dimensions, down.Shape().Dimensions, up.Shape().Dimensions
	if len(ud) != 2 || len(dd) != len(wd) || !slices.Equal(dd[:len(dd)-1], wd[:len(wd)-1]) || ud[0] != dd[len(dd)-1] || ud[1] != wd[len(wd)-1] {
		return nil, fmt.Errorf("shapes: weight %v, lora_down %v, lora_up %v (want [..., r] and [r, %d])", wd, dd, ud, wd[len(wd)-1])
	}
	r, out := ud[0], ud[1]
	in := w.Shape().Size() / out
	wv, dv, uv := tensors.MustCopyFlatData[float32](w), tensors.MustCopyFlatData[float32](down), tensors.MustCopyFlatData[float32](up)
	res := make([]float32, len(wv))
	for i := range in {
		for o := range out {
			var acc float64
			for k := range r {
				acc += float64(dv[i*r+k]) * float64(uv[k*out+o])
			}
			res[i*out+o] = float32(float64(wv[i*out+o]) + s*acc)
		}
	}
	return tensors.FromFlatDataAndDimensions(res, wd...), nil
}
