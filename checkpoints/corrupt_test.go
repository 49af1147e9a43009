package checkpoints

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
)

// writeGood writes a valid two-tensor file ("alpha" then "beta" in data order) and returns its path and bytes.
func writeGood(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "good.safetensors")
	ts := []NamedTensor{{"beta", randomTensor(t, 2, dtypes.Float32, 8)}, {"alpha", randomTensor(t, 1, dtypes.Float32, 4)}}
	if err := WriteSafetensors(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	return path, readFile(t, path)
}

// craft writes a file with the given raw header and data (no padding, no CRC) and returns its path.
func craft(t *testing.T, header string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crafted.safetensors")
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	file = append(append(file, header...), data...)
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// expectReadError checks that ReadSafetensors fails with an error naming the path and containing every want.
func expectReadError(t *testing.T, path string, wants ...string) {
	t.Helper()
	ts, md, err := ReadSafetensors(path)
	if err == nil {
		t.Fatalf("ReadSafetensors(%s) succeeded (%d tensors, metadata %v), want an error", path, len(ts), md)
	}
	for _, want := range append([]string{path}, wants...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if verifySafetensors(path) == nil {
		t.Errorf("verifySafetensors(%s) accepted a file ReadSafetensors rejects", path)
	}
}

func TestReadCorruptWrittenFiles(t *testing.T) {
	path, good := writeGood(t)
	n := int(binary.LittleEndian.Uint64(good[:8]))
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		wants  []string
	}{
		{"truncated data", func(b []byte) []byte { return b[:len(b)-3] }, []string{`"beta"`, "truncated"}},
		{"truncated header", func(b []byte) []byte { return b[:20] }, []string{"header length"}},
		{"shorter than length", func(b []byte) []byte { return b[:5] }, []string{"too short"}},
		{"header length huge", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[:8], 1<<40)
			return b
		}, []string{"header length 1099511627776"}},
		{"bad crc", func(b []byte) []byte { b[8+n+5] ^= 0x10; return b }, []string{"CRC-32C", "corrupt"}},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0, 0, 0, 0) }, []string{"trailing"}},
		{"broken json", func(b []byte) []byte { b[8] = '['; return b }, []string{"not a JSON object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), filepath.Base(path))
			if err := os.WriteFile(p, tc.mutate(append([]byte(nil), good...)), 0o644); err != nil {
				t.Fatal(err)
			}
			expectReadError(t, p, tc.wants...)
		})
	}
}

func TestReadCraftedHeaders(t *testing.T) {
	const f32x2a = `"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	tests := []struct {
		name, header string
		data         []byte
		wants        []string
	}{
		{"overlapping offsets", `{` + f32x2a + `,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`,
			make([]byte, 12), []string{`tensor "b"`, "overlap", `"a"`}},
		{"gap", `{` + f32x2a + `,"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}`,
			make([]byte, 16), []string{`tensor "b"`, "gap"}},
		{"size mismatch", `{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`,
			make([]byte, 8), []string{`tensor "w"`, "needs 12"}},
		{"out of bounds", `{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`,
			make([]byte, 8), []string{`tensor "w"`, "run past"}},
		{"unknown dtype", `{"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}`,
			make([]byte, 8), []string{`tensor "w"`, `"C64"`}},
		{"negative dim", `{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`,
			make([]byte, 1), []string{`tensor "w"`, "shape [-1]"}},
		{"huge dims", `{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`,
			make([]byte, 8), []string{`tensor "w"`, "oversized"}},
		{"missing field", `{"w":{"dtype":"U8","data_offsets":[0,1]}}`,
			make([]byte, 1), []string{`tensor "w"`, "needs dtype, shape and data_offsets"}},
		{"unknown field", `{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}`,
			make([]byte, 1), []string{`tensor "w"`, `"x"`}},
		{"end before begin", `{"w":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}`,
			make([]byte, 1), []string{`tensor "w"`, "data_offsets [1 0]: end before begin"}},
		{"three offsets", `{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`,
			make([]byte, 1), []string{`tensor "w"`, "want [begin, end]"}},
		{"negative offset", `{"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`,
			make([]byte, 1), []string{`tensor "w"`, "negative offset"}},
		{"leading space", ` {"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`,
			make([]byte, 1), []string{"must begin with '{'"}},
		{"empty header", ``, nil, []string{"must begin with '{'"}},
		{"not utf-8", "{\"w\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
			make([]byte, 1), []string{"not valid UTF-8"}},
		{"duplicate key", `{` + f32x2a + `,` + f32x2a + `}`, make([]byte, 8), []string{`duplicate key "a"`}},
		{"invalid bool", `{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}`,
			[]byte{0, 1, 2}, []string{`tensor "m"`, "byte value 2"}},
		{"metadata not strings", `{"__metadata__":{"n":1}}`, nil, []string{"__metadata__"}},
		{"trailing json", `{"__metadata__":{}} x`, nil, []string{"trailing data"}},
		{"unterminated", `{"__metadata__":{}`, nil, []string{"invalid header JSON"}},
		{"bad crc value", `{"__metadata__":{"fewstep.crc32c":"zz"}}`, nil, []string{"CRC-32C"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectReadError(t, craft(t, tc.header, tc.data), tc.wants...)
		})
	}
}

// TestReadForeignFile reads a file as another safetensors writer would produce it: unpadded header,
// keys out of name order, no CRC, null metadata absent.
func TestReadForeignFile(t *testing.T) {
	data := []byte{1, 0, 0, 0, 2, 0, 0, 0, 7, 1, 0}
	header := `{"z":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[1],"data_offsets":[8,9]},` +
		`"m":{"dtype":"BOOL","shape":[2],"data_offsets":[9,11]},"e":{"dtype":"BF16","shape":[0,4],"data_offsets":[11,11]}}`
	ts, md, err := ReadSafetensors(craft(t, header, data))
	if err != nil {
		t.Fatal(err)
	}
	if len(md) != 0 || len(ts) != 4 {
		t.Fatalf("got %d tensors, metadata %v", len(ts), md)
	}
	if got := rawBytes(t, ts["z"]); string(got) != string(data[:8]) || ts["z"].Shape().DType != dtypes.Int32 {
		t.Errorf("z = %v %v", ts["z"].Shape(), got)
	}
	if got := rawBytes(t, ts["m"]); len(got) != 2 || got[0] != 1 || got[1] != 0 {
		t.Errorf("m bytes = %v", got)
	}
	if s := ts["e"].Shape(); s.DType != dtypes.BFloat16 || s.Size() != 0 || s.Rank() != 2 {
		t.Errorf("e shape = %s", s)
	}
}
