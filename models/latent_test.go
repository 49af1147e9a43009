package models

import (
	"encoding/json"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/internal/engine"
)

// TestLatentNorm: Denormalize is z/Scale[c] + Shift[c] per channel (exact on a tiny tensor), nil
// is the identity, and ParseLatentSource refuses a channel_norm of the wrong length or with a
// non-positive scale, naming the key.
func TestLatentNorm(t *testing.T) {
	backend, err := engine.New()
	if err != nil {
		t.Fatal(err)
	}
	n := &LatentNorm{Shift: []float64{1, -2}, Scale: []float64{0.5, 4}}
	z := []float32{1, 2, 3, 4, 5, 6} // [1, 1, 3, 2]
	for _, tc := range []struct {
		norm *LatentNorm
		want []float32
	}{{n, []float32{3, -1.5, 7, -1, 11, -0.5}}, {nil, z}} {
		out := MustExecOnce(backend, func(x *Node) *Node { return tc.norm.Denormalize(x) }, tensors.FromFlatDataAndDimensions(z, 1, 1, 3, 2))
		got := tensors.MustCopyFlatData[float32](out)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("norm %+v: got %v, want %v", tc.norm, got, tc.want)
			}
		}
	}
	src := LatentSource{Run: "r", CheckpointSHA256: "h", ImageSize: 32, Channels: 1, Autoencoder: DefaultAutoencoderConfig()}
	src.Autoencoder.LatentChannels = 2
	for _, tc := range []struct {
		norm *LatentNorm
		want string
	}{{n, ""}, {&LatentNorm{Shift: []float64{0}, Scale: []float64{1}}, "1 shifts and 1 scales for 2 latent channels"},
		{&LatentNorm{Shift: []float64{0, 0}, Scale: []float64{1, 0}}, "channel_norm scale[1] = 0"}} {
		src.Norm = tc.norm
		b, _ := json.Marshal(src)
		_, err := ParseLatentSource("f.parquet", string(b))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "f.parquet")) {
			t.Errorf("channel_norm %+v: error %v, want %q", tc.norm, err, tc.want)
		}
	}
}
