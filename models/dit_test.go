package models

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// refDiTConfig is configs/bench-refdit-s.yaml's model (RefDiT-S, ../shared/anchors/REF_DIT_SPEC.md).
func refDiTConfig() Config {
	c := DefaultConfig()
	c.Arch, c.PatchSize, c.TimeFeatures, c.NumClasses = ArchDiT, 2, 256, 1
	c.DiT = DiTConfig{Hidden: 192, Depth: 6, Heads: 3, MLPRatio: 4}
	c.Text = TextConfig{Source: TextLearned, Layers: 2, Width: 192, Heads: 3, MaxTokens: 16, VocabSizeOverride: 4096, NoStartToken: true}
	return c
}

// TestRefDiTCounts: the RefDiT-S configuration has torch_refdit.py's parameter count (6,773,776)
// and forward FLOPs by its counter (2·MACs of every linear/conv plus 2·2·B·H·N·M·d of attention;
// the embedding lookup counts 0), worked out by hand here: per image 466,649,088.
func TestRefDiTCounts(t *testing.T) {
	params, flops, err := CountForward(testBackend(t), refDiTConfig(), DefaultDiffusionConfig(), 16, 4)
	if err != nil {
		t.Fatal(err)
	}
	const wantFLOPs = 2*(16*192*576+2*3*16*16*64+16*192*192+2*16*192*768)*2 + // text encoder, 2 layers
		2*(256*192+192*192+192*192) + 2*(192*64)*16 + // time MLP, pooled text, patch embedding
		6*2*(64*192*576+2*3*64*64*64+64*192*192+64*192*192+16*192*384+2*3*64*16*64+64*192*192+2*64*192*768+192*1152) + // blocks
		2*(192*384+64*192*16) // final layer
	if params != 6773776 || flops != wantFLOPs {
		t.Fatalf("RefDiT-S: %d parameters, %d FLOPs/image; want 6773776 and %d", params, flops, wantFLOPs)
	}
}

// tinyDiT is a 2-block DiT on 8×8×2 inputs with caption conditioning; every variable N(0, 0.3²)
// (adaLN-Zero would make a fresh DiT the zero function).
func tinyDiT(t *testing.T, backend compute.Backend, text bool, arch ...string) (*DiT, *model.Store, Config) {
	t.Helper()
	c := DefaultConfig()
	c.Arch, c.PatchSize, c.TimeFeatures, c.NumClasses = ArchDiT, 2, 8, 3
	if len(arch) > 0 {
		c.Arch = arch[0]
	}
	c.DiT = DiTConfig{Hidden: 8, Depth: 2, Heads: 2, MLPRatio: 2}
	if text {
		c.Text = TextConfig{Source: TextLearned, Layers: 1, Width: 8, Heads: 2, MaxTokens: 4, VocabSizeOverride: 10, NoStartToken: true}
	}
	d, err := NewDiT(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	warm := [][]int32{{1}}
	if text {
		warm = [][]int32{{1, 3, 4, 0, 0}}
	}
	runDiT(t, backend, d, store, warm) // creates the variables
	rng := rand.New(rand.NewPCG(8, 9))
	for v := range store.IterVariables() {
		vals := make([]float32, v.Shape().Size())
		for i := range vals {
			vals[i] = float32(0.3 * rng.NormFloat64())
		}
		v.MustSetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...))
	}
	return d, store, c
}

// runDiT runs d on one 8×8×2 input per condition row (the same input for every row), t = 0.4.
func runDiT(t *testing.T, backend compute.Backend, d *DiT, store *model.Store, conds [][]int32) []float32 {
	t.Helper()
	n, w := len(conds), len(conds[0])
	x := make([]float32, n*128)
	ts := make([]float32, n)
	var cond []int32
	for i, c := range conds {
		for j := range 128 {
			x[i*128+j] = float32(math.Cos(float64(j) * 0.21))
		}
		ts[i] = 0.4
		cond = append(cond, c...)
	}
	ct := tensors.FromFlatDataAndDimensions(cond, n, w)
	if w == 1 {
		ct = tensors.FromFlatDataAndDimensions(cond, n)
	}
	out := model.MustNewExec(backend, store, func(scope *model.Scope, xn, tn, cn *Node) *Node {
		return d.Net(scope.In("model"), xn, tn, cn)
	}).MustCall1(tensors.FromFlatDataAndDimensions(x, n, 8, 8, 2), ts, ct)
	return tensors.MustCopyFlatData[float32](out)
}

// TestDiTZeroInitAndConditioning: a fresh DiT predicts exactly 0 (adaLN-Zero and the zero-initialized
// output layer); with weights set, the output has the input's shape, depends on the class and on the
// caption, padding changes nothing, an empty caption (no start token) gives finite outputs, and
// examples do not mix.
func TestDiTZeroInitAndConditioning(t *testing.T) {
	backend := testBackend(t)
	c := DefaultConfig()
	c.Arch, c.PatchSize, c.TimeFeatures = ArchDiT, 2, 8
	c.DiT = DiTConfig{Hidden: 8, Depth: 2, Heads: 2, MLPRatio: 2}
	fresh, err := NewDiT(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range runDiT(t, backend, fresh, model.NewStore(), [][]int32{{2}, {1}}) {
		if v != 0 {
			t.Fatalf("fresh DiT output %g, want exactly 0", v)
		}
	}
	d, store, _ := tinyDiT(t, backend, false)
	a := runDiT(t, backend, d, store, [][]int32{{0}, {1}})
	if len(a) != 2*128 || slices.Equal(a[:128], a[128:]) {
		t.Fatal("class 0 and class 1 give the same output")
	}
	dt, storeT, _ := tinyDiT(t, backend, true)
	out := runDiT(t, backend, dt, storeT, [][]int32{{3, 5, 6, 0, 0}, {3, 5, 7, 0, 0}, {3, 0, 0, 0, 0}})
	if slices.Equal(out[:128], out[128:256]) {
		t.Fatal("changing a caption token does not change the output")
	}
	for _, v := range out[256:] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("empty caption: non-finite output %g", v)
		}
	}
	padded := runDiT(t, backend, dt, storeT, [][]int32{{3, 5, 6, 0, 0}})
	short := runDiT(t, backend, dt, storeT, [][]int32{{3, 5, 6}})
	for i := range padded {
		if math.Abs(float64(padded[i]-short[i])) > 1e-6 || padded[i] != out[i] {
			t.Fatalf("padding or batching changes output %d: %g, %g, %g", i, padded[i], short[i], out[i])
		}
	}
}

// TestDiTTapsAndDropBlocks: the taps are block<i>, each [D, B, H/p, W/p]; dropping a block by name
// removes its variables (UsesVariable) and changes the output.
func TestDiTTapsAndDropBlocks(t *testing.T) {
	backend := testBackend(t)
	d, store, c := tinyDiT(t, backend, false)
	if names := c.TapNames(); !slices.Equal(names, []string{"block0", "block1"}) || !slices.Equal(c.BlockNames(), names) {
		t.Fatalf("TapNames %v, BlockNames %v", names, c.BlockNames())
	}
	var shapes [][]int
	model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
		g := x.Graph()
		fs := d.Features(scope.In("model"), x, Const(g, []float32{0.3}), Const(g, []int32{1}), []string{"block1", "block0"})
		for _, f := range fs {
			shapes = append(shapes, f.Shape().Dimensions)
		}
		return fs[0]
	}).MustCall1(tensors.FromFlatDataAndDimensions(make([]float32, 128), 1, 8, 8, 2))
	if len(shapes) != 2 || !slices.Equal(shapes[0], []int{8, 1, 4, 4}) {
		t.Fatalf("tap shapes %v, want [8 1 4 4] each", shapes)
	}
	full := runDiT(t, backend, d, store, [][]int32{{1}})
	c.DropBlocks = []string{"block1"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.UsesVariable("block1/mlp1/weight") || !c.UsesVariable("block0/mlp1/weight") {
		t.Fatal("UsesVariable does not follow drop_blocks")
	}
	pruned := &DiT{Cfg: c, Builder: &Builder{Seed: 3}}
	if slices.Equal(full, runDiT(t, backend, pruned, store, [][]int32{{1}})) {
		t.Fatal("dropping block1 does not change the output")
	}
	c.DropBlocks = []string{"block7"}
	if err := c.Validate(); err == nil {
		t.Fatal("drop_blocks block7 of a 2-block DiT accepted")
	}
}

// TestSinCos2D: the position table's first row is [0…, 1…, 0…, 1…] (position 0) and token (y, x)
// = (1, 2) has sin(1), cos(1) then sin(2), cos(2) at frequency index 0.
func TestSinCos2D(t *testing.T) {
	p := SinCos2D(2, 3, 8)
	if !slices.Equal(p[0], []float32{0, 0, 1, 1, 0, 0, 1, 1}) {
		t.Fatalf("position 0: %v", p[0])
	}
	r := p[1*3+2]
	if r[0] != float32(math.Sin(1)) || r[2] != float32(math.Cos(1)) || r[4] != float32(math.Sin(2)) || r[6] != float32(math.Cos(2)) {
		t.Fatalf("token (1, 2): %v", r)
	}
}

// TestMMDiTJointAttention: the SD3-style joint blocks (model.arch mmdit) read the caption (a token
// change changes the output), padding changes nothing, the empty caption is finite, the last block
// has no caption MLP or output projection, and an mmdit without text is refused.
func TestMMDiTJointAttention(t *testing.T) {
	backend := testBackend(t)
	d, store, c := tinyDiT(t, backend, true, ArchMMDiT)
	out := runDiT(t, backend, d, store, [][]int32{{3, 5, 6, 0, 0}, {3, 5, 7, 0, 0}, {3, 0, 0, 0, 0}})
	if slices.Equal(out[:128], out[128:256]) {
		t.Fatal("changing a caption token does not change the output")
	}
	for _, v := range out[256:] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("empty caption: non-finite output %g", v)
		}
	}
	short := runDiT(t, backend, d, store, [][]int32{{3, 5, 6}})
	for i := range short {
		if math.Abs(float64(short[i]-out[i])) > 1e-6 {
			t.Fatalf("padding changes output %d: %g vs %g", i, short[i], out[i])
		}
	}
	has := map[string]bool{}
	for v := range store.IterVariables() {
		has[v.Path()] = true
	}
	if !has["/model/block0/y/mlp1/weight"] || has["/model/block1/y/mlp1/weight"] || has["/model/block1/y/attn/out/weight"] || !has["/model/block1/y/attn/qkv/weight"] {
		t.Fatalf("caption-stream variables: block0 mlp1 %v, block1 mlp1 %v, block1 out %v, block1 qkv %v", has["/model/block0/y/mlp1/weight"],
			has["/model/block1/y/mlp1/weight"], has["/model/block1/y/attn/out/weight"], has["/model/block1/y/attn/qkv/weight"])
	}
	c.Text = TextConfig{Source: TextNone}
	if err := c.Validate(); err == nil {
		t.Fatal("mmdit without text accepted")
	}
}
