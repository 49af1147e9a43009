package checkpoints

import (
	"bytes"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
)

// randomTensor returns a tensor of the given shape filled with random bits (0/1 bytes for Bool),
// so float tensors include NaNs with payloads, infinities and subnormals: a round trip must be bit-exact.
func randomTensor(t testing.TB, seed uint64, dt dtypes.DType, dims ...int) *tensors.Tensor {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	x := tensors.FromShape(shapes.Make(dt, dims...))
	err := x.MutableBytes(func(data []byte) {
		for i := range data {
			data[i] = byte(rng.Uint32())
			if dt == dtypes.Bool {
				data[i] &= 1
			}
		}
	})
	if err != nil {
		t.Fatalf("MutableBytes: %v", err)
	}
	return x
}

// rawBytes returns a copy of a tensor's raw bytes.
func rawBytes(t testing.TB, x *tensors.Tensor) []byte {
	t.Helper()
	var out []byte
	if err := x.ConstBytes(func(data []byte) { out = slices.Clone(data) }); err != nil {
		t.Fatalf("ConstBytes: %v", err)
	}
	return out
}

// assertSameTensors checks that got holds exactly the tensors of want, with equal shapes and bit-identical data.
func assertSameTensors(t testing.TB, want []NamedTensor, got map[string]*tensors.Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d tensors, want %d", len(got), len(want))
	}
	for _, nt := range want {
		g, ok := got[nt.Name]
		if !ok {
			t.Errorf("tensor %q missing", nt.Name)
			continue
		}
		if !g.Shape().Equal(nt.Tensor.Shape()) {
			t.Errorf("tensor %q: shape %s, want %s", nt.Name, g.Shape(), nt.Tensor.Shape())
			continue
		}
		if gb, wb := rawBytes(t, g), rawBytes(t, nt.Tensor); !bytes.Equal(gb, wb) {
			t.Errorf("tensor %q: data differs (%d vs %d bytes)", nt.Name, len(gb), len(wb))
		}
	}
}

// sampleTensors is a small set covering every dtype, a scalar and zero-size tensors.
func sampleTensors(t testing.TB) []NamedTensor {
	return []NamedTensor{
		{"w/f32", randomTensor(t, 1, dtypes.Float32, 3, 5)},
		{"b/f64_scalar", randomTensor(t, 2, dtypes.Float64)},
		{"f16", randomTensor(t, 3, dtypes.Float16, 7)},
		{"bf16", randomTensor(t, 4, dtypes.BFloat16, 2, 3, 1)},
		{"i64", randomTensor(t, 5, dtypes.Int64, 4)},
		{"i32_empty", randomTensor(t, 6, dtypes.Int32, 0)},
		{"i16", randomTensor(t, 7, dtypes.Int16, 3)},
		{"i8", randomTensor(t, 8, dtypes.Int8, 5)},
		{"u8", randomTensor(t, 9, dtypes.Uint8, 2, 9)},
		{"u16", randomTensor(t, 10, dtypes.Uint16, 3)},
		{"u32", randomTensor(t, 11, dtypes.Uint32, 1)},
		{"u64", randomTensor(t, 12, dtypes.Uint64, 2)},
		{"mask", randomTensor(t, 13, dtypes.Bool, 11)},
		{"zero/f32", randomTensor(t, 14, dtypes.Float32, 2, 0, 3)},
		{"scalar/i32", randomTensor(t, 15, dtypes.Int32)},
	}
}

// readFile reads a file or fails the test.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
