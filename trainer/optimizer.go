package trainer

import (
	"path"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Scopes of the variables a training run owns.
const (
	// ModelScope holds the trainable weights: /model/...
	ModelScope = "model"
	// EMAScope mirrors ModelScope with the exponential moving average: /ema/... (non-trainable).
	EMAScope = "ema"
	// OptScope holds AdamW's moments: /opt/m/model/..., /opt/v/model/... (non-trainable).
	OptScope = "opt"
	// DiscScope holds the trainable discriminator heads of adversarial distillation: /disc/...
	DiscScope = "disc"
)

// TrainableScopes are the scopes whose variables an optimizer may update.
var TrainableScopes = []string{ModelScope, DiscScope}

// EMAPath maps a /model/... variable path to its /ema/... twin.
func EMAPath(p string) string { return "/" + EMAScope + strings.TrimPrefix(p, "/"+ModelScope) }

// MarkTrainable sets Trainable exactly for the variables under TrainableScopes (/model, /disc) and
// clears it elsewhere (/ema, /opt, /teacher; GoMLX restores every variable as trainable;
// gomlx-notes trap 3).
func MarkTrainable(store *model.Store) {
	for v := range store.IterVariables() {
		v.Trainable = false
		for _, sc := range TrainableScopes {
			if strings.HasPrefix(v.Path(), "/"+sc+"/") {
				v.Trainable = true
			}
		}
	}
}

// stepInputs are the host-computed scalars of one optimizer step and what it optimizes.
type stepInputs struct {
	lr, step, emaDecay *Node  // scalars: learning rate, 1-based step for bias correction, EMA decay
	scope              string // the variables updated: /<scope>/... (ModelScope if "")
	noEMA              bool   // skip the EMA update (discriminator heads)
}

// trainableVars returns the trainable variables under /scope used by graph g, sorted by path.
// When the graph uses LoRA adapters (models.LoRAConfig: variables lora_down, lora_up), only they
// are trained; the other variables, the frozen base, are returned as frozen.
func trainableVars(store *model.Store, g *Graph, scope string) (vars, frozen []*model.Variable) {
	for v := range store.IterVariables() {
		if v.Trainable && strings.HasPrefix(v.Path(), "/"+scope+"/") && v.InUseByGraph(g) {
			vars = append(vars, v)
		}
	}
	slices.SortFunc(vars, func(a, b *model.Variable) int { return strings.Compare(a.Path(), b.Path()) })
	if slices.ContainsFunc(vars, IsAdapter) {
		frozen = slices.DeleteFunc(slices.Clone(vars), func(v *model.Variable) bool { return IsAdapter(v) })
		vars = slices.DeleteFunc(vars, func(v *model.Variable) bool { return !IsAdapter(v) })
	}
	return vars, frozen
}

// IsAdapter reports whether v is a LoRA adapter weight (lora_down or lora_up).
func IsAdapter(v *model.Variable) bool {
	base := path.Base(v.Path())
	return base == "lora_down" || base == "lora_up"
}

// AdapterParams counts the LoRA adapter parameters under /model and the model's own (the base's)
// parameters there, adapters excluded.
func AdapterParams(store *model.Store) (adapters, base int) {
	for v := range store.IterVariables() {
		if !strings.HasPrefix(v.Path(), "/"+ModelScope+"/") {
			continue
		}
		if IsAdapter(v) {
			adapters += v.Shape().Size()
		} else {
			base += v.Shape().Size()
		}
	}
	return adapters, base
}

// stateVar returns the non-trainable variable at path, creating it with the given value if missing.
func stateVar(store *model.Store, path string, init func() *tensors.Tensor) *model.Variable {
	v := store.GetVariable(path)
	if v == nil {
		var err error
		if v, err = store.CreateVariable(path, init()); err != nil {
			panic(err)
		}
	}
	v.Trainable = false
	return v
}

// Finite is true where x is neither NaN nor ±Inf, written as x − x = 0 so that every backend runs
// it (ONNX Runtime has no IsFinite). On a sum it tests all summed values (or flags an overflow).
func Finite(x *Node) *Node { return Equal(Sub(x, x), ZerosLike(x)) }

// GlobalNorm is sqrt(Σ_i ‖g_i‖²) over all gradients (float32 scalar).
func GlobalNorm(grads []*Node) *Node {
	var sum *Node
	for _, gr := range grads {
		sq := ReduceAllSum(Square(gr))
		if sum == nil {
			sum = sq
		} else {
			sum = Add(sum, sq)
		}
	}
	return Sqrt(sum)
}

// applyAdamW builds the clipped AdamW update (decoupled weight decay, Loshchilov & Hutter
// arXiv 1711.05101, Alg. 2) followed by the EMA update, for every trainable variable of the graph.
// The new state is kept only if finite(gnorm) holds for `ok(gnorm)` and every updated weight is
// finite; otherwise every variable keeps its old value. loss: scalar. Returns the pre-clip
// gradient norm and the scalar bool "step applied".
func applyAdamW(cfg Config, store *model.Store, loss *Node, in stepInputs, ok func(gnorm *Node) *Node) (gnorm, applied *Node) {
	g := loss.Graph()
	scope := in.scope
	if scope == "" {
		scope = ModelScope
	}
	vars, frozen := trainableVars(store, g, scope)
	if len(vars) == 0 {
		exceptions.Panicf("trainer: no trainable variables under /%s in the loss graph", scope)
	}
	if !in.noEMA { // a LoRA run's frozen base: its EMA twin is a copy, so the EMA weights sample whole
		for _, v := range frozen {
			stateVar(store, EMAPath(v.Path()), func() *tensors.Tensor { return mustClone(v.MustValue()) })
		}
	}
	nodes := make([]*Node, len(vars))
	for i, v := range vars {
		nodes[i] = v.NodeValue(g)
	}
	grads := Gradient(loss, nodes...)
	gnorm = GlobalNorm(grads)
	scale := OnesLike(gnorm)
	if cfg.GradClip > 0 {
		scale = MinScalar(Div(Scalar(g, dtypes.Float32, cfg.GradClip), AddScalar(gnorm, 1e-6)), 1)
	}
	b1, b2 := cfg.Beta1, cfg.Beta2
	bc1 := OneMinus(Pow(Scalar(g, dtypes.Float32, b1), in.step)) // 1 − β1^n
	bc2 := OneMinus(Pow(Scalar(g, dtypes.Float32, b2), in.step))
	type update struct {
		v, m, sq, ema             *model.Variable // ema is nil without EMA
		newP, newM, newSq, newEMA *Node
	}
	updates := make([]update, len(vars))
	applied = ok(gnorm)
	for i, v := range vars {
		zeros := func() *tensors.Tensor { return tensors.FromShape(v.Shape()) }
		u := update{v: v,
			m:  stateVar(store, "/"+OptScope+"/m"+v.Path(), zeros),
			sq: stateVar(store, "/"+OptScope+"/v"+v.Path(), zeros)}
		if !in.noEMA {
			u.ema = stateVar(store, EMAPath(v.Path()), func() *tensors.Tensor { return mustClone(v.MustValue()) })
		}
		p, gr := nodes[i], Mul(grads[i], scale)
		u.newM = Add(MulScalar(u.m.NodeValue(g), b1), MulScalar(gr, 1-b1))
		u.newSq = Add(MulScalar(u.sq.NodeValue(g), b2), MulScalar(Square(gr), 1-b2))
		step := Div(Div(u.newM, bc1), AddScalar(Sqrt(Div(u.newSq, bc2)), cfg.Epsilon))
		u.newP = p
		if cfg.WeightDecay > 0 && v.Shape().Rank() > 1 { // no decay on biases and norm gains
			u.newP = Sub(u.newP, Mul(MulScalar(in.lr, cfg.WeightDecay), p))
		}
		u.newP = Sub(u.newP, Mul(in.lr, step))
		if u.ema != nil {
			u.newEMA = Add(Mul(in.emaDecay, u.ema.NodeValue(g)), Mul(OneMinus(in.emaDecay), u.newP))
		}
		applied = LogicalAnd(applied, Finite(ReduceAllSum(u.newP)))
		updates[i] = u
	}
	for _, u := range updates {
		u.v.SetNodeValue(Where(applied, u.newP, u.v.NodeValue(g)))
		u.m.SetNodeValue(Where(applied, u.newM, u.m.NodeValue(g)))
		u.sq.SetNodeValue(Where(applied, u.newSq, u.sq.NodeValue(g)))
		if u.ema != nil {
			u.ema.SetNodeValue(Where(applied, u.newEMA, u.ema.NodeValue(g)))
		}
	}
	return gnorm, applied
}

func mustClone(t *tensors.Tensor) *tensors.Tensor {
	c, err := t.LocalClone()
	if err != nil {
		panic(err)
	}
	return c
}

// EnsureEMA creates the /ema twin (a copy) of every /model variable that lacks one: a method whose
// loss graph reads the EMA weights (LCM's target network θ⁻) needs them before the first update.
func EnsureEMA(store *model.Store) {
	var vars []*model.Variable
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+ModelScope+"/") {
			vars = append(vars, v)
		}
	}
	for _, v := range vars {
		stateVar(store, EMAPath(v.Path()), func() *tensors.Tensor { return mustClone(v.MustValue()) })
	}
}
