package models

import (
	"maps"
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

// refAttention is float64 multi-head attention: q [B,S,C], kv [B,L,Dk], mask [B,L], weights
// (Wq [C,C], Wk [Dk,C], Wv [Dk,C], Wo [C,C]) and biases → [B,S,C].
func refAttention(q, kv []float64, mask []bool, bsz, s, c, l, dk, heads int, wq, bq, wk, bk, wv, bv, wo, bo []float64) []float64 {
	dense := func(x []float64, n, in, out int, w, b []float64) []float64 {
		y := make([]float64, n*out)
		for i := range n {
			for o := range out {
				acc := b[o]
				for k := range in {
					acc += x[i*in+k] * w[k*out+o]
				}
				y[i*out+o] = acc
			}
		}
		return y
	}
	qp, kp, vp := dense(q, bsz*s, c, c, wq, bq), dense(kv, bsz*l, dk, c, wk, bk), dense(kv, bsz*l, dk, c, wv, bv)
	d := c / heads
	att := make([]float64, bsz*s*c)
	for b := range bsz {
		for h := range heads {
			for i := range s {
				sc := make([]float64, l)
				mx := math.Inf(-1)
				for j := range l {
					if !mask[b*l+j] {
						continue
					}
					for k := range d {
						sc[j] += qp[(b*s+i)*c+h*d+k] * kp[(b*l+j)*c+h*d+k]
					}
					sc[j] /= math.Sqrt(float64(d))
					mx = max(mx, sc[j])
				}
				var z float64
				for j := range l {
					if mask[b*l+j] {
						sc[j] = math.Exp(sc[j] - mx)
						z += sc[j]
					} else {
						sc[j] = 0
					}
				}
				for j := range l {
					for k := range d {
						att[(b*s+i)*c+h*d+k] += sc[j] / z * vp[(b*l+j)*c+h*d+k]
					}
				}
			}
		}
	}
	return dense(att, bsz*s, c, c, wo, bo)
}

// TestCrossAttentionMatchesFloat64: CrossAttention (GroupNorm, masked multi-head attention over
// text tokens, output projection, residual) against a float64 reference on tiny shapes, with
// masked keys in the text.
func TestCrossAttentionMatchesFloat64(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(21, 22))
	const bsz, h, w, c, l, dk, heads, groups = 2, 2, 3, 4, 3, 5, 2, 2
	x := randSlice(rng, bsz*h*w*c) // channels-last [B, H, W, C] on the host
	kv := randSlice(rng, bsz*l*dk)
	mask := []bool{true, false, true, true, true, false}
	gain, bias := randSlice(rng, c), randSlice(rng, c)
	wq, bq, wk, bk := randSlice(rng, c*c), randSlice(rng, c), randSlice(rng, dk*c), randSlice(rng, c)
	wv, bv, wo, bo := randSlice(rng, dk*c), randSlice(rng, c), randSlice(rng, c*c), randSlice(rng, c)
	store := model.NewStore()
	for _, v := range []struct {
		path string
		val  []float64
		dims []int
	}{{"/x/norm/gain", gain, []int{c}}, {"/x/norm/bias", bias, []int{c}}, {"/x/q/weight", wq, []int{c, c}}, {"/x/q/bias", bq, []int{c}},
		{"/x/k/weight", wk, []int{dk, c}}, {"/x/k/bias", bk, []int{c}}, {"/x/v/weight", wv, []int{dk, c}}, {"/x/v/bias", bv, []int{c}},
		{"/x/out/weight", wo, []int{c, c}}, {"/x/out/bias", bo, []int{c}}} {
		mustVar(t, store, v.path, tensors.FromFlatDataAndDimensions(to32(v.val), v.dims...))
	}
	b := &Builder{Frozen: true}
	out := model.MustNewExec(backend, store, func(scope *model.Scope, xn, kvn, mn *Node) *Node {
		tf := TextFeatures{Tokens: kvn, Mask: mn}
		return TransposeAllAxes(b.CrossAttention(scope.In("x"), TransposeAllAxes(xn, 3, 0, 1, 2), tf, heads, groups), 1, 2, 3, 0)
	}).MustCall1(tensors.FromFlatDataAndDimensions(to32(x), bsz, h, w, c), tensors.FromFlatDataAndDimensions(to32(kv), bsz, l, dk),
		tensors.FromFlatDataAndDimensions(mask, bsz, l))
	normed := refGroupNorm(x, gain, bias, bsz, h*w, c, groups)
	want := refAttention(normed, kv, mask, bsz, h*w, c, l, dk, heads, wq, bq, wk, bk, wv, bv, wo, bo)
	for i := range want {
		want[i] += x[i]
	}
	if e := maxRelErr(t, "cross-attention", out, want); e > 1e-4 {
		t.Fatalf("CrossAttention max relative error %.3g", e)
	}
}

// textUNet is a tiny text-conditioned U-Net whose every variable is set to N(0, 0.3²) (the
// zero-initialized output layers would hide the caption otherwise).
func textUNet(t *testing.T, backend compute.Backend) (*UNet, *model.Store) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BaseChannels, cfg.ChannelMult, cfg.AttentionResolutions, cfg.EmbedDim, cfg.TimeFeatures = 8, []int{1, 2}, []int{4}, 16, 8
	cfg.Groups, cfg.AttentionHeads = 4, 2
	cfg.Text = TextConfig{Source: TextLearned, Layers: 2, Width: 8, Heads: 2, MaxTokens: 16, Vocab: []string{"<pad>", "<unk>", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"},
		CrossAttentionResolutions: []int{8, 4}, MidCross: true}
	u, err := NewUNet(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	runTextUNet(t, backend, u, store, [][]int32{{3, 4, 5}}, 16) // creates the variables
	rng := rand.New(rand.NewPCG(31, 32))
	for v := range store.IterVariables() {
		vals := make([]float32, v.Shape().Size())
		for i := range vals {
			vals[i] = float32(0.3 * rng.NormFloat64())
		}
		v.MustSetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...))
	}
	return u, store
}

// runTextUNet runs the U-Net on 8×8 inputs, one example per caption, with captions padded to l tokens
// and class 3.
func runTextUNet(t *testing.T, backend compute.Backend, u *UNet, store *model.Store, captions [][]int32, l int) []float32 {
	t.Helper()
	n := len(captions)
	cond := make([]int32, n*(1+l))
	x := make([]float32, n*8*8)
	ts := make([]float32, n)
	for i, c := range captions {
		cond[i*(1+l)] = 3
		copy(cond[i*(1+l)+1:], c)
		ts[i] = 0.5
		for j := range 64 {
			x[i*64+j] = float32(math.Sin(float64(j*(i+1)) * 0.37))
		}
	}
	out := model.MustNewExec(backend, store, func(scope *model.Scope, xn, tn, cn *Node) *Node {
		scope.SetTraining(xn.Graph(), true)
		return u.Net(scope.In("model"), xn, tn, cn)
	}).MustCall1(tensors.FromFlatDataAndDimensions(x, n, 8, 8, 1), ts, tensors.FromFlatDataAndDimensions(cond, n, 1+l))
	return tensors.MustCopyFlatData[float32](out)
}

// TestTextPaddingChangesNothing: a caption padded to 8 or to 16 tokens gives the same U-Net output
// (masked keys get weight exactly 0; positions of real tokens do not move), while a different caption
// changes it (the caption is read at all).
func TestTextPaddingChangesNothing(t *testing.T) {
	backend := testBackend(t)
	u, store := textUNet(t, backend)
	caps := [][]int32{{3, 4, 5}, {7}, {}}
	a := runTextUNet(t, backend, u, store, caps, 8)
	b := runTextUNet(t, backend, u, store, caps, 16)
	var maxDiff float64
	for i := range a {
		maxDiff = max(maxDiff, math.Abs(float64(a[i]-b[i])))
	}
	if maxDiff > 1e-6 {
		t.Fatalf("padding to 8 vs 16 tokens changes the output by %.3g", maxDiff)
	}
	c := runTextUNet(t, backend, u, store, [][]int32{{3, 4, 6}, {7}, {}}, 16)
	if slices.Equal(b[:64], c[:64]) {
		t.Fatal("changing a caption token does not change the output")
	}
	if !slices.Equal(b[64:], c[64:]) {
		t.Fatal("changing example 0's caption changed the other examples")
	}
}

// TestEmptyCaptionIsNullCondition: NullCond of a text model's condition is the null class with the
// empty caption (all padding), and the U-Net output for it equals that of an explicitly empty
// caption; a class-only condition gets the null class.
func TestEmptyCaptionIsNullCondition(t *testing.T) {
	backend := testBackend(t)
	got := model.MustNewExec(backend, model.NewStore(), func(scope *model.Scope, c *Node) *Node {
		return NullCond(c, 10)
	}).MustCall1(tensors.FromFlatDataAndDimensions([]int32{3, 5, 6, 0, 2, 7, 0, 0}, 2, 4))
	if v := tensors.MustCopyFlatData[int32](got); !slices.Equal(v, []int32{10, 0, 0, 0, 10, 0, 0, 0}) {
		t.Fatalf("NullCond [2, 4] = %v", v)
	}
	got = model.MustNewExec(backend, model.NewStore(), func(scope *model.Scope, c *Node) *Node {
		return NullCond(c, 10)
	}).MustCall1([]int32{3, 5})
	if v := tensors.MustCopyFlatData[int32](got); !slices.Equal(v, []int32{10, 10}) {
		t.Fatalf("NullCond [2] = %v", v)
	}
	// A text model's output for the empty caption (all padding) does not depend on how far it is padded.
	u, store := textUNet(t, backend)
	u.Cfg.Text.MaxTokens = 16
	a := runTextUNet(t, backend, u, store, [][]int32{{}}, 4)
	b := runTextUNet(t, backend, u, store, [][]int32{{}}, 16)
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			t.Fatalf("empty caption padded to 4 vs 16 differs at %d: %g vs %g", i, a[i], b[i])
		}
	}
}

// TestColumnEncoderMatchesFloat64: under source column the encoder decodes the fixed-point
// condition, reads E = 6 values as T = 2 tokens of 3, projects them (W·e + b), prepends the
// start token, adds positions and, with no layers, applies the final LayerNorm; the pooled vector
// is the mean over all 1+T tokens. Compared with a float64 computation of the same formula.
func TestColumnEncoderMatchesFloat64(t *testing.T) {
	backend := testBackend(t)
	tc := TextConfig{Source: TextColumn, Layers: 0, Width: 4, Heads: 2, EmbeddingDim: 6, EmbeddingTokens: 2}
	emb := [][]float32{{0.5, -1.25, 2, 0.125, 3.5, -0.75}, {0, 0, 0, 0, 0, 0}}
	cond := make([]int32, 12)
	for i, e := range emb {
		if err := EncodeEmbedding(cond[i*6:(i+1)*6], e); err != nil {
			t.Fatal(err)
		}
	}
	store := model.NewStore()
	var b Builder
	run := func() []float32 {
		out := model.MustNewExec(backend, store, func(scope *model.Scope, c *Node) *Node {
			return b.TextEncoder(scope.In("text"), tc, 0, c).Pooled
		}).MustCall1(tensors.FromFlatDataAndDimensions(cond, 2, 6))
		return tensors.MustCopyFlatData[float32](out)
	}
	run() // creates the variables
	rng := rand.New(rand.NewPCG(5, 6))
	vals := map[string][]float64{}
	for v := range store.IterVariables() {
		f := make([]float32, v.Shape().Size())
		g := make([]float64, len(f))
		for i := range f {
			f[i] = float32(0.5 * rng.NormFloat64())
			g[i] = float64(f[i])
		}
		v.MustSetValue(tensors.FromFlatDataAndDimensions(f, v.Shape().Dimensions...))
		p := v.Path()
		vals[p[strings.LastIndex(p, "/text/")+6:]] = g
	}
	got := run()
	w, bias, start, pos := vals["project/weight"], vals["project/bias"], vals["start/token"], vals["position/table"]
	gain, offset := vals["final_norm/gain"], vals["final_norm/offset"]
	if w == nil || bias == nil || start == nil || pos == nil || gain == nil || offset == nil {
		t.Fatalf("variables: %v", slices.Collect(maps.Keys(vals)))
	}
	for i, e := range emb {
		pooled := make([]float64, 4)
		for tok := range 3 {
			x := make([]float64, 4)
			for d := range 4 {
				if tok == 0 {
					x[d] = start[d]
				} else {
					x[d] = bias[d]
					for j := range 3 {
						x[d] += float64(e[(tok-1)*3+j]) * w[j*4+d]
					}
				}
				x[d] += pos[tok*4+d]
			}
			var mean, v float64
			for _, a := range x {
				mean += a / 4
			}
			for _, a := range x {
				v += (a - mean) * (a - mean) / 4
			}
			for d := range 4 {
				pooled[d] += ((x[d]-mean)/math.Sqrt(v+1e-5)*gain[d] + offset[d]) / 3
			}
		}
		for d := range 4 {
			if diff := math.Abs(float64(got[i*4+d]) - pooled[d]); diff > 2e-5 {
				t.Fatalf("example %d, channel %d: got %g, float64 %g", i, d, got[i*4+d], pooled[d])
			}
		}
	}
}

// TestEncodeEmbedding: the fixed-point form round-trips within half a step (2^-21) and refuses
// values out of range or not finite, naming the index.
func TestEncodeEmbedding(t *testing.T) {
	v := []float32{0, 1, -1, 0.3, -1e-3, 2047.5, 1e-7}
	dst := make([]int32, len(v))
	if err := EncodeEmbedding(dst, v); err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if back := float64(dst[i]) / EmbeddingScale; math.Abs(back-float64(v[i])) > 1.0/(2*EmbeddingScale) {
			t.Fatalf("value %g came back as %g", v[i], back)
		}
	}
	for _, bad := range []float32{2048, -3000, float32(math.NaN()), float32(math.Inf(1))} {
		if err := EncodeEmbedding(dst[:2], []float32{0, bad}); err == nil || !strings.Contains(err.Error(), "value 1") {
			t.Fatalf("value %g: err = %v", bad, err)
		}
	}
}
