package models

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestTinyDecoderShapesAndParams: latents [2, 4, 4, 4] decode to [2, 16, 16, 3] (f = 4), the
// variable count equals TAESD's layout exactly — conv_in, per upsampling Blocks blocks of three
// 3×3 convs and one upsampling conv, block_out, conv_out (all with biases) — and there is no
// normalization (no scale/offset variables). The soft clamp bounds what the first conv sees: a
// latent of 1e6 gives the same image as one of 1e3 (tanh(x/3)·3 saturates at 3).
func TestTinyDecoderShapesAndParams(t *testing.T) {
	backend := testBackend(t)
	cfg := DefaultTinyDecoderConfig()
	cfg.Channels, cfg.Blocks = 8, 2
	store, exec := tinyExec(t, backend, cfg)
	z := make([]float32, 2*4*4*4)
	for i := range z {
		z[i] = float32(i%7) - 3
	}
	out := exec.MustCall1(tensors.FromFlatDataAndDimensions(z, 2, 4, 4, 4))
	if d := out.Shape().Dimensions; len(d) != 4 || d[0] != 2 || d[1] != 16 || d[2] != 16 || d[3] != 3 {
		t.Fatalf("decoded shape %v, want [2 16 16 3]", d)
	}
	params := 0
	for v := range store.IterVariables() {
		if strings.Contains(v.Path(), "norm") || strings.Contains(v.Path(), "scale") {
			t.Errorf("tiny decoder has a normalization variable %s", v.Path())
		}
		params += v.Shape().Size()
	}
	c, zc, ch, ups := 8, 4, 3, 2
	conv := func(in, out int) int { return 9*in*out + out }
	want := conv(zc, c) + ups*(cfg.Blocks*3*conv(c, c)+conv(c, c)) + 3*conv(c, c) + conv(c, ch)
	if params != want {
		t.Fatalf("tiny decoder has %d parameters, TAESD's layout %d", params, want)
	}
	// out_blocks 0 drops exactly the full-resolution block's three convs; 2 adds a second one
	for _, ob := range []int{0, 2} {
		c2 := cfg
		c2.OutBlocks = ob
		st, ex := tinyExec(t, backend, c2)
		if d := ex.MustCall1(tensors.FromFlatDataAndDimensions(z, 2, 4, 4, 4)).Shape().Dimensions; d[1] != 16 || d[3] != 3 {
			t.Fatalf("out_blocks %d: decoded shape %v", ob, d)
		}
		n := 0
		for v := range st.IterVariables() {
			n += v.Shape().Size()
		}
		if w := want + (ob-1)*3*conv(c, c); n != w {
			t.Fatalf("out_blocks %d: %d parameters, want %d", ob, n, w)
		}
	}
	if err := (TinyDecoderConfig{Channels: 8, Blocks: 1, OutBlocks: -1, Downsample: 1, DiscChannels: 8, DiscLayers: 1}).Validate(); err == nil || !strings.Contains(err.Error(), "tiny_decoder.out_blocks") {
		t.Fatalf("out_blocks -1: error %v, want one naming tiny_decoder.out_blocks", err)
	}
	big := func(v float32) []float32 {
		x := make([]float32, 2*4*4*4)
		for i := range x {
			x[i] = v
		}
		return tensors.MustCopyFlatData[float32](exec.MustCall1(tensors.FromFlatDataAndDimensions(x, 2, 4, 4, 4)))
	}
	a, b := big(1e3), big(1e6)
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5 {
			t.Fatalf("pixel %d: %g for latents 1e3, %g for 1e6: the soft clamp does not bound the input", i, a[i], b[i])
		}
	}
	if _, err := NewTinyDecoder(TinyDecoderConfig{Channels: 0, Blocks: 1, Downsample: 1, DiscChannels: 8, DiscLayers: 1}, 0); err == nil || !strings.Contains(err.Error(), "tiny_decoder.channels") {
		t.Fatalf("channels 0: error %v, want one naming tiny_decoder.channels", err)
	}
}

// tinyExec builds a tiny decoder of cfg on a new store: an exec decoding latents [B, h, w, 4] with
// f = 4 to 3 channels.
func tinyExec(t *testing.T, backend compute.Backend, cfg TinyDecoderConfig) (*model.Store, *model.Exec) {
	t.Helper()
	td, err := NewTinyDecoder(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	return store, model.MustNewExec(backend, store, func(scope *model.Scope, z *Node) *Node {
		return td.Decode(scope.In("tiny"), z, 4, 3)
	})
}
