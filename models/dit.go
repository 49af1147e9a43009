package models

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/nn"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Architectures of Config.Arch.
const (
	ArchUNet  = "unet"
	ArchDiT   = "dit"
	ArchMMDiT = "mmdit"
	// ArchAutoencoder marks a run that trains the autoencoder of the `autoencoder:` section
	// (latent diffusion's first stage) instead of a denoiser.
	ArchAutoencoder = "autoencoder"
)

// Transformer reports whether model.arch is one of the transformers (dit, mmdit).
func (c Config) Transformer() bool { return c.Arch == ArchDiT || c.Arch == ArchMMDiT }

// DiTConfig is the `model.dit:` section (model.arch dit): the diffusion transformer of Peebles & Xie
// (arXiv 2212.09748) with PixArt-α's cross-attention to the caption (arXiv 2310.00426 §2.3).
type DiTConfig struct {
	// Hidden is the token width D.
	Hidden int `mapstructure:"hidden"`
	// Depth is the number of transformer blocks.
	Depth int `mapstructure:"depth"`
	// Heads is the number of attention heads of every block (self- and cross-attention).
	Heads int `mapstructure:"heads"`
	// MLPRatio sets the MLP's hidden width, MLPRatio·D.
	MLPRatio int `mapstructure:"mlp_ratio"`
}

// DefaultDiTConfig is a DiT-S-like transformer narrowed for 2 CPU cores (D 192, 6 blocks, 3 heads:
// RefDiT-S, ../shared/anchors/REF_DIT_SPEC.md).
func DefaultDiTConfig() DiTConfig { return DiTConfig{Hidden: 192, Depth: 6, Heads: 3, MLPRatio: 4} }

func (d DiTConfig) validate(c Config) error {
	for _, kv := range []struct {
		key string
		v   int
	}{{"hidden", d.Hidden}, {"depth", d.Depth}, {"heads", d.Heads}, {"mlp_ratio", d.MLPRatio}} {
		if kv.v <= 0 {
			return fmt.Errorf("model.dit.%s: must be positive, got %d", kv.key, kv.v)
		}
	}
	if d.Hidden%d.Heads != 0 {
		return fmt.Errorf("model.dit.heads: %d does not divide hidden %d", d.Heads, d.Hidden)
	}
	if (d.Hidden/2)%2 != 0 {
		return fmt.Errorf("model.dit.hidden: %d must be a multiple of 4 (2-D sin-cos positions)", d.Hidden)
	}
	if c.Arch == ArchMMDiT && !c.Text.On() {
		return fmt.Errorf("model.arch: mmdit attends jointly over image and caption tokens: it needs model.text (source learned or column)")
	}
	return nil
}

// DiT is the transformer denoiser of Config (model.arch dit):
//
//	tokens = Linear(patchify_p(x_t)) + fixed 2-D sin-cos positions        [B, N, D], N = (H/p)·(W/p)
//	c      = MLP(sinusoidal(1000·t)) + class table[class] + Linear(pooled caption)          [B, D]
//	block i (adaLN-Zero, DiT §3.2; cross-attention, PixArt-α §2.3):
//	  (β1, γ1, α1, β2, γ2, α2) = Linear_zero-init(SiLU(c))
//	  h += α1 · SelfAttn(LN(h)·(1+γ1) + β1)
//	  h += CrossAttn(LN_affine(h), caption tokens)          (with model.text on)
//	  h += α2 · MLP(LN(h)·(1+γ2) + β2)                      (GELU, tanh form)
//	out    = Linear_zero-init(LN(h)·(1+γ) + β), (β, γ) = Linear_zero-init(SiLU(c)); unpatchify
//
// so a fresh DiT predicts exactly 0 and every block starts as the identity. Block outputs are the
// feature taps "block<i>" (LADD §3.2 reads the teacher transformer's tokens, reshaped to 2-D maps).
type DiT struct {
	Cfg Config
	*Builder
	// Tap, when set, receives the named intermediate features of Net (TapNames), each as a
	// channels-first map [D, B, H/p, W/p], and TapText the pooled caption [B, D_text].
	Tap func(name string, h *Node)
}

// NewDiT validates cfg and returns a DiT whose missing variables are initialized from seed.
func NewDiT(cfg Config, seed uint64) (*DiT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &DiT{Cfg: cfg, Builder: &Builder{Seed: seed, LoRA: loraOf(cfg)}}, nil
}

// Params returns the DiT's parameter builder (Backbone).
func (m *DiT) Params() *Builder { return m.Builder }

func (m *DiT) tap(name string, h *Node) {
	if m.Tap != nil {
		m.Tap(name, h)
	}
}

// Features runs Net and returns the named taps in the order asked (Backbone).
func (m *DiT) Features(scope *model.Scope, x, t, cond *Node, names []string) []*Node {
	return features(&m.Tap, m.Net, m.Cfg, scope, x, t, cond, names)
}

// Net is the network: x: [B, H, W, C], t: [B] in [0, 1], cond: [B] int32 (class) or [B, 1+L]
// (class, then the caption, see Config.CondWidth) → the raw prediction [B, H, W, C].
func (m *DiT) Net(scope *model.Scope, x, t, cond *Node) *Node {
	cfg, dc := m.Cfg, m.Cfg.DiT
	if err := cfg.CheckInput(x.Shape().Dimensions[1]); err != nil {
		panic(err)
	}
	m.FLOPs = 0
	dims := x.Shape().Dimensions
	bsz, p, ch := dims[0], cfg.PatchSize, dims[3]
	nh, nw := dims[1]/p, dims[2]/p
	d := dc.Hidden
	class, tokens := SplitCond(cond)
	text := m.textFeatures(scope, cfg, cond, tokens)
	if text.Pooled != nil {
		m.tap(TapText, text.Pooled)
	}
	c := m.conditioning(scope, t, class, text.Pooled) // [B, D]
	cAct := SiLU(c)
	h := m.Dense(scope.In("patch"), Reshape(SpaceToDepth(x, p), bsz, nh*nw, p*p*ch), d, InitFanIn)
	h = Add(h, ExpandAxes(Const(x.Graph(), SinCos2D(nh, nw, d)), 0)) // [B, N, D]
	var y *Node                                                      // MMDiT: the caption stream, [B, L, D]
	if cfg.Arch == ArchMMDiT {
		y = m.Dense(scope.In("context"), text.Tokens, d, InitFanIn)
	}
	for i := range dc.Depth {
		name := fmt.Sprintf("block%d", i)
		switch {
		case cfg.Dropped(name):
		case y != nil:
			h, y = m.jointBlock(scope.In("%s", name), h, y, cAct, text.Mask, i == m.lastKept())
		default:
			h = m.block(scope.In("%s", name), h, cAct, text)
		}
		m.tap(name, TransposeAllAxes(Reshape(h, bsz, nh, nw, d), 3, 0, 1, 2))
	}
	out := scope.In("final")
	mod := m.Dense(out.In("ada"), cAct, 2*d, InitZeros)
	shift, scale := Slice(mod, AxisRange(), AxisRange(0, d)), Slice(mod, AxisRange(), AxisRange(d, 2*d))
	h = modulate(nn.LayerNorm(h, []int{2}, 1e-6, nil, nil, nil), shift, scale)
	h = m.Dense(out.In("linear"), h, p*p*ch, InitZeros) // [B, N, p·p·C]
	return DepthToSpace(Reshape(h, bsz, nh, nw, p*p*ch), p)
}

// textFeatures runs the caption encoder when model.text is on (checks as the U-Net's).
func (m *DiT) textFeatures(scope *model.Scope, cfg Config, cond, tokens *Node) TextFeatures {
	switch {
	case cfg.Text.On() && tokens == nil:
		exceptions.Panicf("DiT: model.text is on but the condition is %s (want [B, %d])", cond.Shape(), cfg.CondWidth())
	case !cfg.Text.On() && tokens != nil:
		exceptions.Panicf("DiT: the condition %s carries tokens but model.text.source is %q", cond.Shape(), cfg.Text.Source)
	case tokens == nil:
		return TextFeatures{}
	}
	return m.TextEncoder(scope.In("text"), cfg.Text, cfg.Text.VocabSize(), tokens)
}

// conditioning is c = time MLP + class embedding (unless a caption-only text model) + projected
// pooled caption. t: [B], class: [B] int32, pooled: [B, Dt] or nil → [B, D].
func (m *DiT) conditioning(scope *model.Scope, t, class, pooled *Node) *Node {
	cfg, d := m.Cfg, m.Cfg.DiT.Hidden
	c := m.Dense(scope.In("time0"), TimestepFeatures(MulScalar(t, 1000), cfg.TimeFeatures), d, InitFanIn)
	c = m.Dense(scope.In("time1"), SiLU(c), d, InitFanIn)
	if !cfg.Text.On() || cfg.Text.WithClass {
		table := m.Param(scope.In("class"), t.Graph(), "table", InitNormal, 1, cfg.NumClasses+1, d)
		c = Add(c, Dot(OneHot(class, cfg.NumClasses+1, dtypes.Float32), table).Product())
	}
	if pooled != nil {
		c = Add(c, m.Dense(scope.In("text_pool"), pooled, d, InitFanIn))
	}
	return c
}

// block is one adaLN-Zero transformer block (see DiT). h: [B, N, D], cAct: SiLU(c) [B, D] → [B, N, D].
func (m *DiT) block(scope *model.Scope, h, cAct *Node, text TextFeatures) *Node {
	dc := m.Cfg.DiT
	d := dc.Hidden
	mod := m.Dense(scope.In("ada"), cAct, 6*d, InitZeros)
	part := func(i int) *Node { return Slice(mod, AxisRange(), AxisRange(i*d, (i+1)*d)) }
	a := modulate(nn.LayerNorm(h, []int{2}, 1e-6, nil, nil, nil), part(0), part(1))
	h = Add(h, Mul(ExpandAxes(part(2), 1), m.SelfAttentionTokens(scope.In("attn"), a, dc.Heads)))
	if text.Tokens != nil {
		q := m.LayerNorm(scope.In("cross_norm"), h)
		h = Add(h, m.attention(scope.In("cross"), q, text.Tokens, text.Mask, dc.Heads, InitFanIn, text.MaybeEmpty))
	}
	a = modulate(nn.LayerNorm(h, []int{2}, 1e-6, nil, nil, nil), part(3), part(4))
	a = m.Dense(scope.In("mlp1"), a, dc.MLPRatio*d, InitFanIn)
	a = m.Dense(scope.In("mlp2"), GELU(a), d, InitFanIn)
	return Add(h, Mul(ExpandAxes(part(5), 1), a))
}

// lastKept is the index of the last block not removed by drop_blocks (-1 if none).
func (m *DiT) lastKept() int {
	for i := m.Cfg.DiT.Depth - 1; i >= 0; i-- {
		if !m.Cfg.Dropped(fmt.Sprintf("block%d", i)) {
			return i
		}
	}
	return -1
}

// jointBlock is an MMDiT block (Esser et al., SD3, arXiv 2403.03206 §5.1): image tokens h [B, N, D]
// and caption tokens y [B, L, D] keep separate adaLN modulations, q/k/v projections, output
// projections and MLPs, and attend jointly over the concatenated sequence (caption padding masked
// as keys; image tokens are always keys). The last block updates only the image stream (its
// caption outputs would be unused, as SD3's context_pre_only). keyMask: [B, L] → (h, y).
func (m *DiT) jointBlock(scope *model.Scope, h, y, cAct, keyMask *Node, last bool) (*Node, *Node) {
	dc := m.Cfg.DiT
	d, heads := dc.Hidden, dc.Heads
	dims := h.Shape().Dimensions
	bsz, n, l := dims[0], dims[1], y.Shape().Dimensions[1]
	xs, ys := scope.In("x"), scope.In("y")
	attX, attY := xs.In("attn"), ys.In("attn")
	ny := 6
	if last {
		ny = 2 // shift and scale of the caption's attention input only
	}
	modX := m.Dense(xs.In("ada"), cAct, 6*d, InitZeros)
	modY := m.Dense(ys.In("ada"), cAct, ny*d, InitZeros)
	part := func(mod *Node, i int) *Node { return Slice(mod, AxisRange(), AxisRange(i*d, (i+1)*d)) }
	qkvX := m.Dense(attX.In("qkv"), modulate(nn.LayerNorm(h, []int{2}, 1e-6, nil, nil, nil), part(modX, 0), part(modX, 1)), 3*d, InitFanIn)
	qkvY := m.Dense(attY.In("qkv"), modulate(nn.LayerNorm(y, []int{2}, 1e-6, nil, nil, nil), part(modY, 0), part(modY, 1)), 3*d, InitFanIn)
	mask := Concatenate([]*Node{BroadcastToDims(Const(h.Graph(), true), bsz, n), keyMask}, 1) // [B, N+L]
	att := m.jointAttention(Concatenate([]*Node{qkvX, qkvY}, 1), mask, heads)                 // [B, N+L, D]
	ax := m.Dense(attX.In("out"), Slice(att, AxisRange(), AxisRange(0, n)), d, InitFanIn)
	h = Add(h, Mul(ExpandAxes(part(modX, 2), 1), ax))
	a := modulate(nn.LayerNorm(h, []int{2}, 1e-6, nil, nil, nil), part(modX, 3), part(modX, 4))
	a = m.Dense(xs.In("mlp2"), GELU(m.Dense(xs.In("mlp1"), a, dc.MLPRatio*d, InitFanIn)), d, InitFanIn)
	h = Add(h, Mul(ExpandAxes(part(modX, 5), 1), a))
	if last {
		return h, y
	}
	ay := m.Dense(attY.In("out"), Slice(att, AxisRange(), AxisRange(n, n+l)), d, InitFanIn)
	y = Add(y, Mul(ExpandAxes(part(modY, 2), 1), ay))
	a = modulate(nn.LayerNorm(y, []int{2}, 1e-6, nil, nil, nil), part(modY, 3), part(modY, 4))
	a = m.Dense(ys.In("mlp2"), GELU(m.Dense(ys.In("mlp1"), a, dc.MLPRatio*d, InitFanIn)), d, InitFanIn)
	return h, Add(y, Mul(ExpandAxes(part(modY, 5), 1), a))
}

// jointAttention is softmax(QKᵀ/√d + mask)·V per head over fused q/k/v rows qkv: [B, S, 3D] with
// keyMask: [B, S] (false: not a key; every row has a true key; nil: every token is a key) →
// [B, S, D] (no output projection).
func (b *Builder) jointAttention(qkv, keyMask *Node, heads int) *Node {
	dims := qkv.Shape().Dimensions
	bsz, s, c := dims[0], dims[1], dims[2]/3
	d := c / heads
	qkv = Reshape(TransposeAllAxes(Reshape(qkv, bsz, s, 3, heads, d), 2, 0, 3, 1, 4), 3, bsz*heads, s, d)
	q, k, v := Squeeze(Slice(qkv, AxisElem(0)), 0), Squeeze(Slice(qkv, AxisElem(1)), 0), Squeeze(Slice(qkv, AxisElem(2)), 0)
	b.FLOPs += 4 * int64(bsz*heads) * int64(s) * int64(s) * int64(d)
	scores := MulScalar(DotGeneral(q, []int{2}, []int{0}, k, []int{2}, []int{0}), 1/math.Sqrt(float64(d))) // [B·heads, S, S]
	if keyMask != nil {
		bias := MulScalar(ConvertDType(LogicalNot(keyMask), scores.DType()), -1e9) // [B, S]
		bias = Reshape(BroadcastToDims(Reshape(bias, bsz, 1, 1, s), bsz, heads, 1, s), bsz*heads, 1, s)
		scores = Add(scores, bias)
	}
	att := DotGeneral(Softmax(scores, -1), []int{2}, []int{0}, v, []int{1}, []int{0}) // [B·heads, S, d]
	return Reshape(TransposeAllAxes(Reshape(att, bsz, heads, s, d), 0, 2, 1, 3), bsz, s, c)
}

// SelfAttentionTokens is multi-head self-attention over tokens with one fused q/k/v projection:
// x: [B, N, D] → Linear(D, 3D) → softmax(QKᵀ/√d)·V per head → Linear(D, D) → [B, N, D].
func (b *Builder) SelfAttentionTokens(scope *model.Scope, x *Node, heads int) *Node {
	c := x.Shape().Dimensions[2]
	qkv := b.Dense(scope.In("qkv"), x, 3*c, InitFanIn) // [B, N, 3D]
	return b.Dense(scope.In("out"), b.jointAttention(qkv, nil, heads), c, InitFanIn)
}

// modulate is adaLN's x·(1 + scale) + shift with per-example shift, scale: [B, D]; x: [B, N, D].
func modulate(x, shift, scale *Node) *Node {
	return Add(Mul(x, OnePlus(ExpandAxes(scale, 1))), ExpandAxes(shift, 1))
}

// SinCos2D is the fixed 2-D sin-cos position table of an h×w token grid, [h·w, d] (row-major tokens):
// the first d/2 channels encode the row, the last d/2 the column, each as [sin(pos·ω_i), cos(pos·ω_i)]
// with ω_i = 10000^(−i/(d/4)), i < d/4 (MAE/DiT's 2-D sin-cos embedding).
func SinCos2D(h, w, d int) [][]float32 {
	q := d / 4
	out := make([][]float32, h*w)
	for y := range h {
		for x := range w {
			row := make([]float32, d)
			for i := range q {
				omega := 1 / math.Pow(10000, float64(i)/float64(q))
				row[i], row[q+i] = float32(math.Sin(float64(y)*omega)), float32(math.Cos(float64(y)*omega))
				row[2*q+i], row[3*q+i] = float32(math.Sin(float64(x)*omega)), float32(math.Cos(float64(x)*omega))
			}
			out[y*w+x] = row
		}
	}
	return out
}
