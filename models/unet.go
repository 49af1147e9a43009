package models

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// UNet is the class-conditional U-Net described by Config: a stem conv, per level NumResBlocks
// residual blocks (+ self-attention at AttentionResolutions) and a stride-2 conv downsample, a
// middle ResBlock–Attention–ResBlock, and a mirrored up path that concatenates the level's skip,
// then nearest-neighbour upsampling + conv. The time t enters as sinusoidal features of 1000·t
// (Vaswani et al. 2017; Ho et al. 2020) through a 2-layer MLP; the class through a learned table
// with a null row for classifier-free guidance. ../shared/anchors/REF_UNET_SPEC.md (RefUNet-S) is
// the configuration of configs/bench-refunet-s.yaml.
type UNet struct {
	Cfg Config
	*Builder
	// Tap, when set, receives the named intermediate feature maps of Net (see TapNames), each
	// channels-first [C, B, h, w]: the feature network of adversarial distillation (LADD §3.2).
	Tap func(name string, h *Node)
}

// TapText is the extra tap of a text model: the pooled caption vector [B, D] (not a feature map;
// LADD's heads project on it, as on the class).
const TapText = "text"

// TapNames lists the feature taps of a config, from input to output. DiT: "block<i>". U-Net: "down<l>" (end of encoder
// level l, before downsampling), "mid" (after the middle block), "up<l>" (end of decoder level l,
// before upsampling).
func (cfg Config) TapNames() []string {
	var names []string
	if cfg.Transformer() { // block<i>: the output of transformer block i
		for i := range cfg.DiT.Depth {
			names = append(names, fmt.Sprintf("block%d", i))
		}
		return names
	}
	for l := range cfg.ChannelMult {
		names = append(names, fmt.Sprintf("down%d", l))
	}
	names = append(names, "mid")
	for l := len(cfg.ChannelMult) - 1; l >= 0; l-- {
		names = append(names, fmt.Sprintf("up%d", l))
	}
	return names
}

// Features runs Net and returns the feature maps of the named taps in the order asked, each
// [C, B, h, w]. It panics on an unknown tap name (configs validate them against TapNames).
func (u *UNet) Features(scope *model.Scope, x, t, cond *Node, names []string) []*Node {
	return features(&u.Tap, u.Net, u.Cfg, scope, x, t, cond, names)
}

// Params returns the U-Net's parameter builder (Backbone).
func (u *UNet) Params() *Builder { return u.Builder }

// features runs net with *tap collecting every tap, then returns the named ones in order.
func features(tap *func(string, *Node), net Net, cfg Config, scope *model.Scope, x, t, cond *Node, names []string) []*Node {
	got := map[string]*Node{}
	prev := *tap
	*tap = func(name string, h *Node) { got[name] = h }
	net(scope, x, t, cond)
	*tap = prev
	out := make([]*Node, len(names))
	for i, n := range names {
		if out[i] = got[n]; out[i] == nil {
			panic(fmt.Sprintf("unknown feature tap %q (known: %v)", n, cfg.TapNames()))
		}
	}
	return out
}

func (u *UNet) tap(name string, h *Node) {
	if u.Tap != nil {
		u.Tap(name, h)
	}
}

// NewUNet validates cfg and returns a U-Net whose missing variables are initialized from seed.
func NewUNet(cfg Config, seed uint64) (*UNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &UNet{Cfg: cfg, Builder: &Builder{Seed: seed, LoRA: loraOf(cfg)}}, nil
}

// Net is the network: x: [B, H, W, C] float32, t: [B] float32 in [0,1], cond: [B] int32 in
// [0, NumClasses] (NumClasses = null class) → [B, H, W, C], the raw prediction. With model.text on,
// cond is [B, 1+L] int32: the class (NumClasses when the run has no labels), then the caption's L
// token ids (0 = padding; all padding = the empty caption, the null condition); see CondWidth.
func (u *UNet) Net(scope *model.Scope, x, t, cond *Node) *Node {
	cfg := u.Cfg
	if err := cfg.CheckInput(x.Shape().Dimensions[1]); err != nil {
		panic(err)
	}
	u.FLOPs = 0
	conv := ConvImpl(cfg.Conv)
	class, tokens := SplitCond(cond)
	var text TextFeatures
	switch {
	case cfg.Text.On() && tokens == nil:
		exceptions.Panicf("UNet: model.text is on but the condition is %s (want [B, %d]: class, then token ids or embedding)", cond.Shape(), cfg.CondWidth())
	case !cfg.Text.On() && tokens != nil:
		exceptions.Panicf("UNet: the condition %s carries tokens but model.text.source is %q", cond.Shape(), cfg.Text.Source)
	case tokens != nil:
		if !cfg.Text.Column() && cfg.Text.VocabSize() < 2 {
			exceptions.Panicf("UNet: model.text.vocab is empty (configs.Load fills it from the training data's metadata)")
		}
		text = u.TextEncoder(scope.In("text"), cfg.Text, cfg.Text.VocabSize(), tokens)
		u.tap(TapText, text.Pooled)
	}
	embAct := SiLU(u.embedding(scope.In("embed"), t, class, text.Pooled)) // computed once, read by every block
	cross := func(s *model.Scope, name string, h *Node) *Node {
		if !cfg.Text.hasCross(h.Shape().Dimensions[2]) {
			return h
		}
		return u.CrossAttention(s.In("%s", name), h, text, cfg.Text.Heads, cfg.Groups)
	}
	// Channels-first inside: [C, B, H, W] keeps every conv's GEMM free of large transposes (conv.go).
	h := TransposeAllAxes(SpaceToDepth(x, cfg.PatchSize), 3, 0, 1, 2)
	h = u.Conv2D(scope.In("stem"), h, cfg.BaseChannels, 3, 1, conv, InitFanIn)
	var skips []*Node
	last := len(cfg.ChannelMult) - 1
	for lvl, m := range cfg.ChannelMult {
		s := scope.In("down%d", lvl)
		for i := range cfg.NumResBlocks {
			h = u.res(s, fmt.Sprintf("down%d", lvl), fmt.Sprintf("res%d", i), h, embAct, m*cfg.BaseChannels)
			if slices.Contains(cfg.AttentionResolutions, h.Shape().Dimensions[2]) && !cfg.Dropped(fmt.Sprintf("down%d/attn%d", lvl, i)) {
				h = u.SelfAttention(s.In("attn%d", i), h, cfg.AttentionHeads, cfg.Groups)
			}
			h = cross(s, fmt.Sprintf("cross%d", i), h)
		}
		skips = append(skips, h)
		u.tap(fmt.Sprintf("down%d", lvl), h)
		if lvl < last {
			h = u.Conv2D(s.In("downsample"), h, m*cfg.BaseChannels, 3, 2, conv, InitFanIn)
		}
	}
	mid := scope.In("mid")
	chMid := cfg.ChannelMult[last] * cfg.BaseChannels
	h = u.res(mid, "mid", "res0", h, embAct, chMid)
	if cfg.MidAttention && !cfg.Dropped("mid/attn") {
		h = u.SelfAttention(mid.In("attn"), h, cfg.AttentionHeads, cfg.Groups)
	}
	if cfg.Text.On() && cfg.Text.MidCross {
		h = u.CrossAttention(mid.In("cross"), h, text, cfg.Text.Heads, cfg.Groups)
	}
	h = u.res(mid, "mid", "res1", h, embAct, chMid)
	u.tap("mid", h)
	for lvl := last; lvl >= 0; lvl-- {
		s := scope.In("up%d", lvl)
		ch := cfg.ChannelMult[lvl] * cfg.BaseChannels
		h = Concatenate([]*Node{h, skips[lvl]}, 0)
		for i := range cfg.NumResBlocks {
			h = u.res(s, fmt.Sprintf("up%d", lvl), fmt.Sprintf("res%d", i), h, embAct, ch)
			h = cross(s, fmt.Sprintf("cross%d", i), h)
		}
		u.tap(fmt.Sprintf("up%d", lvl), h)
		if lvl > 0 {
			h = u.UpsampleConv2D(s.In("upsample"), h, ch, conv, InitFanIn)
		}
	}
	out := scope.In("out")
	h = SiLU(u.GroupNorm(out.In("norm"), h, cfg.Groups))
	p := cfg.PatchSize
	c := x.Shape().Dimensions[3]
	h = u.Conv2D(out.In("conv"), h, c*p*p, 3, 1, conv, InitZeros)
	y := DepthToSpace(TransposeAllAxes(h, 1, 2, 3, 0), p) // [B, H, W, C]
	if cfg.PixelHead > 0 {
		ph := TransposeAllAxes(Concatenate([]*Node{x, y}, -1), 3, 0, 1, 2) // [2C, B, H, W]
		ph = SiLU(u.Conv2D(out.In("pixel_head1"), ph, cfg.PixelHead, 3, 1, conv, InitFanIn))
		ph = u.Conv2D(out.In("pixel_head2"), ph, c, 3, 1, conv, InitZeros)
		y = Add(y, TransposeAllAxes(ph, 1, 2, 3, 0))
	}
	return y
}

// SpaceToDepth folds p×p patches into channels: [B, H, W, C] → [B, H/p, W/p, p·p·C] ordered (py, px, c).
func SpaceToDepth(x *Node, p int) *Node {
	if p == 1 {
		return x
	}
	d := x.Shape().Dimensions
	y := Reshape(x, d[0], d[1]/p, p, d[2]/p, p, d[3])
	return Reshape(TransposeAllAxes(y, 0, 1, 3, 2, 4, 5), d[0], d[1]/p, d[2]/p, p*p*d[3])
}

// DepthToSpace is the inverse of SpaceToDepth: [B, h, w, p·p·C] → [B, h·p, w·p, C].
func DepthToSpace(x *Node, p int) *Node {
	if p == 1 {
		return x
	}
	d := x.Shape().Dimensions
	c := d[3] / (p * p)
	y := Reshape(x, d[0], d[1], d[2], p, p, c)
	return Reshape(TransposeAllAxes(y, 0, 1, 3, 2, 4, 5), d[0], d[1]*p, d[2]*p, c)
}

// embedding returns the time+class(+pooled caption) embedding. t: [B], cond: [B] int32 (the
// class), pooled: [B, D] or nil → [B, EmbedDim].
func (u *UNet) embedding(scope *model.Scope, t, cond, pooled *Node) *Node {
	cfg := u.Cfg
	feats := TimestepFeatures(MulScalar(t, 1000), cfg.TimeFeatures)
	e := u.Dense(scope.In("time0"), feats, cfg.EmbedDim, InitFanIn)
	e = u.Dense(scope.In("time1"), SiLU(e), cfg.EmbedDim, InitFanIn)
	table := u.Param(scope.In("class"), t.Graph(), "table", InitNormal, 1, cfg.NumClasses+1, cfg.EmbedDim)
	onehot := OneHot(cond, cfg.NumClasses+1, dtypes.Float32) // [B, NumClasses+1]
	e = Add(e, Dot(onehot, table).Product())
	if pooled != nil { // the pooled caption vector joins the time embedding (LDM §3.3, as SDXL's pooled text)
		e = Add(e, u.Dense(scope.In("text_pool"), pooled, cfg.EmbedDim, InitFanIn))
	}
	return e
}

// TimestepFeatures are the sinusoidal features [sin(τ·f_i), cos(τ·f_i)] with f_i = 10000^(−i/half).
// tau: [B] → [B, n].
func TimestepFeatures(tau *Node, n int) *Node {
	half := n / 2
	freqs := make([]float32, half)
	for i := range freqs {
		freqs[i] = float32(math.Exp(-math.Log(10000) * float64(i) / float64(half)))
	}
	args := Mul(ExpandAxes(tau, -1), ExpandAxes(Const(tau.Graph(), freqs), 0)) // [B, half]
	return Concatenate([]*Node{Sin(args), Cos(args)}, -1)
}

// res is the residual block parent/name, or only its skip path when Config.DropBlocks removes it.
func (u *UNet) res(parent *model.Scope, parentName, name string, h, embAct *Node, out int) *Node {
	if !u.Cfg.Dropped(parentName + "/" + name) {
		return u.ResBlock(parent.In("%s", name), h, embAct, out)
	}
	if h.Shape().Dimensions[0] == out {
		return h
	}
	return u.Conv2D(parent.In("%s", name).In("skip"), h, out, 1, 1, ConvImpl(u.Cfg.Conv), InitFanIn)
}

// ResBlock: GN → SiLU → Conv3×3 → + Dense(SiLU(emb)) → GN → SiLU → Conv3×3 (zero-init) plus a
// 1×1-conv skip when channels change. h: [Cin, B, H, W] (channels-first), embAct: [B, E] →
// [out, B, H, W].
func (u *UNet) ResBlock(scope *model.Scope, h, embAct *Node, out int) *Node {
	conv := ConvImpl(u.Cfg.Conv)
	groups := u.Cfg.Groups
	r := SiLU(u.GroupNorm(scope.In("norm1"), h, groups))
	r = u.Conv2D(scope.In("conv1"), r, out, 3, 1, conv, InitFanIn)
	e := u.Dense(scope.In("emb"), embAct, out, InitFanIn) // [B, out]
	r = Add(r, ExpandAxes(Transpose(e, 0, 1), 2, 3))
	r = SiLU(u.GroupNorm(scope.In("norm2"), r, groups))
	r = u.Conv2D(scope.In("conv2"), r, out, 3, 1, conv, InitZeros)
	skip := h
	if h.Shape().Dimensions[0] != out {
		skip = u.Conv2D(scope.In("skip"), h, out, 1, 1, conv, InitFanIn)
	}
	return Add(skip, r)
}
