package models

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/nn"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Text sources of TextConfig.Source.
const (
	TextNone    = "none"    // class conditioning only
	TextLearned = "learned" // a caption encoder trained jointly with the denoiser
	TextColumn  = "column"  // precomputed embeddings (the Parquet text_embedding column) through a learned projection
)

// EmbeddingScale is the fixed-point scale of precomputed text embeddings in the int32 condition
// (model.text.source column): a value v travels as round(v·2^20), so |v| < 2048 with an absolute
// resolution of 2^-20 ≈ 9.5e-7 (float32's own for |v| ≥ 16). Integers keep one denoiser signature
// (cond int32) and are exact in every backend and in ONNX (Cast + Mul), which a bit-cast is not.
const EmbeddingScale = 1 << 20

// EncodeEmbedding writes the fixed-point form of embedding values v into dst (len(dst) = len(v)).
// It fails, naming the index, on a value that is not finite or |v| >= 2048.
func EncodeEmbedding(dst []int32, v []float32) error {
	if len(dst) != len(v) {
		return fmt.Errorf("text embedding: %d values for %d condition columns", len(v), len(dst))
	}
	for i, x := range v {
		f := float64(x) * EmbeddingScale
		if math.IsNaN(f) || math.Abs(f) >= math.MaxInt32 {
			return fmt.Errorf("text embedding: value %d is %g: want finite and |v| < %d", i, x, math.MaxInt32/EmbeddingScale+1)
		}
		dst[i] = int32(math.Round(f))
	}
	return nil
}

// TextConfig is the `model.text:` section: a caption encoder trained jointly with the denoiser
// (the text-conditioning of latent diffusion, Rombach et al., arXiv 2112.10752 §3.3, with a small
// transformer in place of CLIP/BERT). Token ids come from the dataset's vocabulary (data.BuildVocab,
// id 0 = padding).
type TextConfig struct {
	// Source is "none" (class conditioning only), "learned" (captions through the encoder below) or
	// "column" (the Parquet text_embedding column, precomputed by the user's own encoder: its E
	// values, viewed as EmbeddingTokens tokens of E/EmbeddingTokens values, are projected to Width
	// and run through the same transformer layers; data.condition text_embedding).
	Source string `mapstructure:"source"`
	// Layers is the number of pre-LN transformer layers.
	Layers int `mapstructure:"layers"`
	// Width is the token feature width D.
	Width int `mapstructure:"width"`
	// Heads is the number of attention heads of the encoder's self-attention and of the U-Net's
	// cross-attention; it must divide Width and every cross-attended level's channels.
	Heads int `mapstructure:"heads"`
	// MaxTokens is L, the caption length in tokens (padded with id 0, truncated); source learned.
	MaxTokens int `mapstructure:"max_tokens"`
	// EmbeddingDim is E, the length of every text_embedding (source column): 0 in a preset,
	// read from the training data when the config loads.
	EmbeddingDim int `mapstructure:"embedding_dim"`
	// EmbeddingTokens is T (source column): the embedding is read as T tokens of E/T values (1: a
	// pooled sentence embedding; e.g. 77 for CLIP's per-token features flattened).
	EmbeddingTokens int `mapstructure:"embedding_tokens"`
	// PromptFile (source column) names the Parquet files (comma-separated paths or globs) whose
	// caption and text_embedding columns map prompts to embeddings in `sample -prompt`, eval and
	// training grids; empty in a preset, data.train when the config loads.
	PromptFile string `mapstructure:"prompt_file"`
	// Vocab is the caption vocabulary (token id i = Vocab[i]; data.BuildVocab, with "<pad>" and
	// "<unk>" first): empty in a preset, filled from the training data's metadata when the config is
	// loaded, so the resolved config — saved in the run, in every checkpoint and in exports —
	// carries it with the weights. Its length is the size of the token table (set at import with
	// `fewstep data … -vocab-size N`).
	Vocab []string `mapstructure:"vocab"`
	// VocabSizeOverride is the token table's size when Vocab is empty (`vocab_size`: benchmarks
	// and synthetic data; ids must stay below it); with a vocabulary it must be 0 or equal.
	VocabSizeOverride int `mapstructure:"vocab_size"`
	// NoStartToken drops the learned start token that is otherwise prepended and never masked
	// (so the empty caption encodes to the start token's features). Without it (RefDiT-S's encoder)
	// an all-padding caption attends to nothing: attention outputs over it are 0 and its pooled
	// vector is 0.
	NoStartToken bool `mapstructure:"no_start_token"`
	// ClassNames are the training data's class names (metadata), filled with Vocab: prompts that
	// name a class (its name or a caption template) get that label in `sample -out DIR/` and eval.
	ClassNames []string `mapstructure:"class_names"`
	// CrossAttentionResolutions lists the feature-map sides (in pixels, as
	// model.attention_resolutions) where cross-attention to the caption follows each down-path
	// residual block; the middle block gets one too (after its self-attention) when MidCross.
	CrossAttentionResolutions []int `mapstructure:"cross_attention_resolutions"`
	// MidCross adds cross-attention in the middle block.
	MidCross bool `mapstructure:"mid_cross"`
	// WithClass conditions on the class label as well as the caption (both in one run); off, the
	// class is always the null class and the caption alone conditions.
	WithClass bool `mapstructure:"with_class"`
}

// VocabSize is the token table's size: len(Vocab), or vocab_size without a vocabulary.
func (t TextConfig) VocabSize() int {
	if len(t.Vocab) > 0 {
		return len(t.Vocab)
	}
	return t.VocabSizeOverride
}

// On reports whether the model is conditioned on text (learned from captions or precomputed).
func (t TextConfig) On() bool { return t.Source == TextLearned || t.Source == TextColumn }

// Column reports whether the text arrives as precomputed embeddings (source column).
func (t TextConfig) Column() bool { return t.Source == TextColumn }

// CondWidth is the number of int32 values per example of the condition: 1 (the class) without
// text, 1+MaxTokens (the class, then the caption's token ids) under source learned, 1+EmbeddingDim
// (the class, then the embedding in fixed point, EmbeddingScale) under source column.
func (c Config) CondWidth() int {
	switch {
	case c.Text.Column():
		return 1 + c.Text.EmbeddingDim
	case c.Text.On():
		return 1 + c.Text.MaxTokens
	}
	return 1
}

// DefaultTextConfig is off; turned on it is a 2-layer, 64-wide, 4-head encoder of 16 tokens with
// cross-attention at 8×8 and in the middle block.
func DefaultTextConfig() TextConfig {
	return TextConfig{Source: TextNone, Layers: 2, Width: 64, Heads: 4, MaxTokens: 16, EmbeddingTokens: 1,
		CrossAttentionResolutions: []int{8}, MidCross: true}
}

func (t TextConfig) validate(c Config) error {
	if t.Source != TextNone && t.Source != TextLearned && t.Source != TextColumn {
		return fmt.Errorf("model.text.source: unknown value %q (known: none, learned, column)", t.Source)
	}
	if !t.On() {
		return nil
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"layers", t.Layers}, {"width", t.Width}, {"heads", t.Heads}, {"max_tokens", t.MaxTokens}, {"embedding_tokens", t.EmbeddingTokens}} {
		if kv.v <= 0 && (kv.key != "embedding_tokens" || t.Column()) {
			return fmt.Errorf("model.text.%s: must be positive, got %d", kv.key, kv.v)
		}
	}
	if t.EmbeddingDim < 0 || t.Column() && t.EmbeddingDim > 0 && t.EmbeddingDim%t.EmbeddingTokens != 0 {
		return fmt.Errorf("model.text.embedding_dim: %d is not a positive multiple of embedding_tokens %d", t.EmbeddingDim, t.EmbeddingTokens)
	}
	if n := len(t.Vocab); n == 1 {
		return fmt.Errorf("model.text.vocab: %d tokens, want none (filled from the data) or >= 2", n)
	}
	if v := t.VocabSizeOverride; v < 0 || v > 0 && len(t.Vocab) > 0 && v != len(t.Vocab) {
		return fmt.Errorf("model.text.vocab_size: %d disagrees with the %d-token vocabulary", v, len(t.Vocab))
	}
	if t.Width%t.Heads != 0 {
		return fmt.Errorf("model.text.heads: %d does not divide width %d", t.Heads, t.Width)
	}
	for i, m := range c.ChannelMult {
		if ch := m * c.BaseChannels; ch%t.Heads != 0 && !c.Transformer() {
			return fmt.Errorf("model.text.heads: %d does not divide the %d channels of level %d", t.Heads, ch, i)
		}
	}
	for i, r := range t.CrossAttentionResolutions {
		if r <= 0 {
			return fmt.Errorf("model.text.cross_attention_resolutions[%d]: must be positive, got %d", i, r)
		}
	}
	return nil
}

// TextFeatures is the caption encoder's output.
type TextFeatures struct {
	// Tokens: [B, 1+L, D], a learned start token (always present) then the L caption tokens.
	Tokens *Node
	// Mask: [B, 1+L] bool, true for the start token and the non-padding caption tokens.
	Mask *Node
	// Pooled: [B, D], the mean of Tokens over Mask (0 for an empty caption).
	Pooled *Node
	// MaybeEmpty: a row of Mask may be all false (no start token): attention to such a caption
	// outputs 0 (its output projection's bias alone).
	MaybeEmpty bool
}

// TextEncoder maps caption token ids to features: token embedding + learned positions, N pre-LN
// transformer layers (Vaswani et al. 2017; pre-LN as Xiong et al. arXiv 2002.04745) whose
// self-attention masks padding, a final LayerNorm, and the mean over non-padding tokens.
//
// A learned start token is prepended (like CLIP's BOS token in latent diffusion): it is never
// masked, so the empty caption — all padding — is a valid input whose features are the start
// token's alone; it is the null condition of classifier-free guidance. Padding never changes the
// features of the other tokens (masked keys get weight exactly 0), so a caption padded to 8 or
// 16 tokens encodes the same.
//
// tokens: [B, L] int32 (0 = padding), L <= MaxTokens; vocab is the table size.
//
// Under source column, tokens is [B, E] int32: a precomputed embedding in fixed point
// (EmbeddingScale), read as T = EmbeddingTokens tokens of E/T values, each projected to D by a
// learned linear map; nothing is masked (the null condition, all zeros, is the zero embedding).
func (b *Builder) TextEncoder(scope *model.Scope, tc TextConfig, vocab int, tokens *Node) TextFeatures {
	g := tokens.Graph()
	dims := tokens.Shape().Dimensions
	bsz, l := dims[0], dims[1]
	d := tc.Width
	var x, mask *Node // mask: [B, (1+)L], true for the start token and every non-padding token
	npos := tc.MaxTokens
	if tc.Column() {
		if l != tc.EmbeddingDim {
			exceptions.Panicf("TextEncoder: %d embedding values, model.text.embedding_dim is %d", l, tc.EmbeddingDim)
		}
		e := MulScalar(ConvertDType(tokens, dtypes.Float32), 1.0/EmbeddingScale)
		l = tc.EmbeddingTokens
		npos = l
		x = b.Dense(scope.In("project"), Reshape(e, bsz, l, tc.EmbeddingDim/l), d, InitFanIn) // [B, T, D]
		mask = BroadcastToDims(Const(g, true), bsz, l)
	} else {
		if l > tc.MaxTokens {
			exceptions.Panicf("TextEncoder: %d tokens, model.text.max_tokens is %d", l, tc.MaxTokens)
		}
		table := b.Param(scope.In("token"), g, "table", InitNormal, 0.02, vocab, d)
		x = Gather(table, ExpandAxes(tokens, -1)) // [B, L, D]: a row lookup (no FLOPs, as an embedding layer)
		mask = NotEqual(tokens, ScalarZero(g, tokens.DType()))
	}
	if !tc.NoStartToken {
		start := b.Param(scope.In("start"), g, "token", InitNormal, 0.02, d)
		x = Concatenate([]*Node{BroadcastToDims(Reshape(start, 1, 1, d), bsz, 1, d), x}, 1) // [B, 1+L, D]
		mask = Concatenate([]*Node{BroadcastToDims(Const(g, true), bsz, 1), mask}, 1)
		l, npos = l+1, npos+1
	}
	pos := b.Param(scope.In("position"), g, "table", InitNormal, 0.02, npos, d)
	x = Add(x, ExpandAxes(Slice(pos, AxisRange(0, l)), 0))
	empty := tc.NoStartToken && !tc.Column() // an all-padding caption has no key at all
	for i := range tc.Layers {
		s := scope.In("layer%d", i)
		h := b.LayerNorm(s.In("norm1"), x)
		x = Add(x, b.attention(s.In("attn"), h, h, mask, tc.Heads, InitFanIn, empty))
		h = b.LayerNorm(s.In("norm2"), x)
		h = b.Dense(s.In("mlp1"), h, 4*d, InitFanIn)
		x = Add(x, b.Dense(s.In("mlp2"), SiLU(h), d, InitFanIn))
	}
	x = b.LayerNorm(scope.In("final_norm"), x)
	m := ConvertDType(mask, dtypes.Float32)
	count := ReduceSum(m, 1)
	if empty {
		count = Max(count, OnesLike(count)) // the empty caption pools to 0
	}
	pooled := Div(ReduceSum(Mul(x, ExpandAxes(m, -1)), 1), ExpandAxes(count, -1))
	return TextFeatures{Tokens: x, Mask: mask, Pooled: pooled, MaybeEmpty: empty}
}

// LayerNorm normalizes over the last axis with a learned gain (1) and offset (0). x: [..., D].
func (b *Builder) LayerNorm(scope *model.Scope, x *Node) *Node {
	d := x.Shape().Dimensions[x.Rank()-1]
	gain := b.Param(scope, x.Graph(), "gain", InitOnes, 0, d)
	offset := b.Param(scope, x.Graph(), "offset", InitZeros, 0, d)
	return nn.LayerNorm(x, []int{x.Rank() - 1}, 1e-5, gain, offset, nil)
}

// attention is multi-head attention (Vaswani et al. 2017) of queries q: [B, S, Dq] over keys and
// values kv: [B, L, Dkv] with keyMask: [B, L] bool (false: ignored; every row needs one true):
// projections q·Wq, kv·Wk, kv·Wv to Dq channels, softmax(QKᵀ/√d + mask)·V per head, output
// projection (init outInit) → [B, S, Dq]. Masked keys get a score of −1e9, so their weight is
// exactly 0 in float32. With maybeEmpty, rows whose keys are all masked get weights 0 (not the
// uniform softmax over padding).
func (b *Builder) attention(scope *model.Scope, q, kv, keyMask *Node, heads int, outInit Init, maybeEmpty bool) *Node {
	qd, kd := q.Shape().Dimensions, kv.Shape().Dimensions
	bsz, s, c, l := qd[0], qd[1], qd[2], kd[1]
	d := c / heads
	split := func(x *Node, n int) *Node { // [B, n, C] → [B·heads, n, d]
		return Reshape(TransposeAllAxes(Reshape(x, bsz, n, heads, d), 0, 2, 1, 3), bsz*heads, n, d)
	}
	qh := split(b.Dense(scope.In("q"), q, c, InitFanIn), s)
	kh := split(b.Dense(scope.In("k"), kv, c, InitFanIn), l)
	vh := split(b.Dense(scope.In("v"), kv, c, InitFanIn), l)
	b.FLOPs += 4 * int64(bsz*heads) * int64(s) * int64(l) * int64(d)
	scores := MulScalar(DotGeneral(qh, []int{2}, []int{0}, kh, []int{2}, []int{0}), 1/math.Sqrt(float64(d))) // [B·heads, S, L]
	bias := Where(keyMask, ZerosLike(ConvertDType(keyMask, scores.DType())), OnesLike(ConvertDType(keyMask, scores.DType())))
	bias = MulScalar(bias, -1e9)                                                                    // [B, L]
	bias = Reshape(BroadcastToDims(Reshape(bias, bsz, 1, 1, l), bsz, heads, 1, l), bsz*heads, 1, l) // [B·heads, 1, L]
	weights := Softmax(Add(scores, bias), -1)
	if maybeEmpty {
		any := ReduceMax(ConvertDType(keyMask, scores.DType()), 1) // [B]: 1 if some key is kept
		any = Reshape(BroadcastToDims(Reshape(any, bsz, 1, 1, 1), bsz, heads, 1, 1), bsz*heads, 1, 1)
		weights = Mul(weights, any)
	}
	att := DotGeneral(weights, []int{2}, []int{0}, vh, []int{1}, []int{0}) // [B·heads, S, d]
	att = Reshape(TransposeAllAxes(Reshape(att, bsz, heads, s, d), 0, 2, 1, 3), bsz, s, c)
	return b.Dense(scope.In("out"), att, c, outInit)
}

// CrossAttention is GroupNorm → attention of the H·W image tokens (queries) over the caption's
// tokens (keys and values, padding masked) → zero-initialized output projection → residual add,
// as the U-Net's cross-attention layers of latent diffusion (arXiv 2112.10752 §3.3).
// x: [C, B, H, W] (channels-first); text: the encoder's features → [C, B, H, W].
func (b *Builder) CrossAttention(scope *model.Scope, x *Node, text TextFeatures, heads, groups int) *Node {
	dims := x.Shape().Dimensions
	c, bsz, h, w := dims[0], dims[1], dims[2], dims[3]
	if c%heads != 0 {
		exceptions.Panicf("CrossAttention: %d channels not divisible by %d heads", c, heads)
	}
	q := TransposeAllAxes(Reshape(b.GroupNorm(scope.In("norm"), x, groups), c, bsz, h*w), 1, 2, 0) // [B, S, C]
	out := b.attention(scope, q, text.Tokens, text.Mask, heads, InitZeros, text.MaybeEmpty)        // [B, S, C]
	return Add(x, Reshape(TransposeAllAxes(out, 2, 0, 1), c, bsz, h, w))
}

// SplitCond splits the condition of a text model, cond: [B, 1+L] int32, into the class [B] and
// the caption's token ids [B, L]; a class-only cond [B] is returned as is with nil tokens.
func SplitCond(cond *Node) (class, tokens *Node) {
	if cond.Rank() == 1 {
		return cond, nil
	}
	w := cond.Shape().Dimensions[1]
	return Reshape(Slice(cond, AxisRange(), AxisRange(0, 1)), cond.Shape().Dimensions[0]), Slice(cond, AxisRange(), AxisRange(1, w))
}

// NullCond is the null condition of classifier-free guidance with cond's shape: the null class
// nullClass in column 0 and, for a text model's [B, 1+L] cond, the empty caption (all padding)
// in the others. cond: [B] or [B, 1+L] int32.
func NullCond(cond *Node, nullClass int) *Node {
	if cond.Rank() == 1 {
		return AddScalar(ZerosLike(cond), float64(nullClass))
	}
	d := cond.Shape().Dimensions
	col := make([]int32, d[1])
	col[0] = int32(nullClass)
	return BroadcastToDims(Const(cond.Graph(), [][]int32{col}), d[0], d[1])
}

// hasCross reports whether a down-path level of feature side `side` gets cross-attention.
func (t TextConfig) hasCross(side int) bool {
	return t.On() && slices.Contains(t.CrossAttentionResolutions, side)
}
