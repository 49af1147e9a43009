package checkpoints

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	want := sampleTensors(t)
	meta := map[string]string{"model": "unet", "odd": "<&> \"quoted\" ünïcode\n", "": "empty key"}
	if err := WriteSafetensors(path, want, meta); err != nil {
		t.Fatal(err)
	}
	got, gotMeta, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, want, got)
	crc, ok := gotMeta[MetadataCRC]
	if !ok || len(crc) != 8 {
		t.Errorf("metadata %s = %q, want 8 hex digits", MetadataCRC, crc)
	}
	delete(gotMeta, MetadataCRC)
	if !maps.Equal(gotMeta, meta) {
		t.Errorf("metadata = %q, want %q", gotMeta, meta)
	}
	if _, ok := meta[MetadataCRC]; ok {
		t.Errorf("WriteSafetensors modified the caller's metadata map")
	}
}

// TestSafetensorsIndependentReader parses a written file with a minimal reader that follows the format
// description only, checking alignment, name-ordered contiguous layout, data bytes and the CRC.
func TestSafetensorsIndependentReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	want := sampleTensors(t)
	if err := WriteSafetensors(path, want, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	file := readFile(t, path)
	n := binary.LittleEndian.Uint64(file[:8])
	dataStart := 8 + int(n)
	if dataStart%8 != 0 {
		t.Errorf("data starts at byte %d, not 8-byte aligned", dataStart)
	}
	header := file[8:dataStart]
	if trimmed := bytes.TrimRight(header, " "); trimmed[len(trimmed)-1] != '}' || len(header)-len(trimmed) >= 8 {
		t.Errorf("header must be JSON padded with < 8 spaces, got tail %q", header[len(trimmed)-1:])
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatalf("header is not valid JSON: %v", err)
	}
	var meta map[string]string
	if err := json.Unmarshal(h["__metadata__"], &meta); err != nil || meta["k"] != "v" {
		t.Errorf("__metadata__ = %s (err %v), want k=v", h["__metadata__"], err)
	}
	data := file[dataStart:]
	sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	if want := hex.EncodeToString(binary.BigEndian.AppendUint32(nil, sum)); meta[MetadataCRC] != want {
		t.Errorf("%s = %q, independent CRC-32C = %q", MetadataCRC, meta[MetadataCRC], want)
	}
	sorted := append([]NamedTensor(nil), want...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	names := map[string]string{"F64": "Float64", "F32": "Float32", "F16": "Float16", "BF16": "BFloat16",
		"I64": "Int64", "I32": "Int32", "I16": "Int16", "I8": "Int8", "U64": "Uint64", "U32": "Uint32",
		"U16": "Uint16", "U8": "Uint8", "BOOL": "Bool"}
	offset := 0
	for _, nt := range sorted {
		var e struct {
			DType       string `json:"dtype"`
			Shape       []int  `json:"shape"`
			DataOffsets []int  `json:"data_offsets"`
		}
		if err := json.Unmarshal(h[nt.Name], &e); err != nil {
			t.Fatalf("tensor %q: %v (entry %s)", nt.Name, err, h[nt.Name])
		}
		shape := nt.Tensor.Shape()
		if names[e.DType] != shape.DType.String() || e.Shape == nil || !equalInts(e.Shape, shape.Dimensions) {
			t.Errorf("tensor %q: header dtype %s shape %v, want %s %v", nt.Name, e.DType, e.Shape, shape.DType, shape.Dimensions)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] != offset {
			t.Fatalf("tensor %q: data_offsets %v, want to start at %d (name order, contiguous)", nt.Name, e.DataOffsets, offset)
		}
		offset = e.DataOffsets[1]
		if !bytes.Equal(data[e.DataOffsets[0]:e.DataOffsets[1]], rawBytes(t, nt.Tensor)) {
			t.Errorf("tensor %q: bytes in file differ from the tensor", nt.Name)
		}
	}
	if offset != len(data) || len(h) != len(want)+1 {
		t.Errorf("data section %d bytes, tensors cover %d; header has %d keys for %d tensors", len(data), offset, len(h), len(want))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWriteSafetensorsRejects(t *testing.T) {
	good := randomTensor(t, 1, dtypes.Float32, 2)
	tests := []struct {
		name string
		ts   []NamedTensor
		want string
	}{
		{"duplicate", []NamedTensor{{"a", good}, {"a", good}}, `"a": duplicate`},
		{"empty name", []NamedTensor{{"", good}}, `invalid name ""`},
		{"reserved name", []NamedTensor{{"__metadata__", good}}, `invalid name "__metadata__"`},
		{"nil tensor", []NamedTensor{{"w", nil}}, `"w": nil tensor`},
		{"complex", []NamedTensor{{"c", randomTensor(t, 2, dtypes.Complex64, 2)}}, `"c": dtype`},
		{"invalid utf-8", []NamedTensor{{"w\xff", good}}, `invalid name "w\xff"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.safetensors")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteSafetensors(path, tc.ts, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error = %v, want one containing %q and the path", err, tc.want)
			}
			if got := string(readFile(t, path)); got != "old" {
				t.Errorf("target was modified: %q", got)
			}
			assertDirHolds(t, dir, "x.safetensors")
		})
	}
}

// assertDirHolds checks that dir contains exactly the given names (no temp files left).
func assertDirHolds(t testing.TB, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory %s holds %q, want %q", dir, got, names)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	for _, content := range []string{"first", "second, longer content"} {
		if err := WriteFileAtomic(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if got := string(readFile(t, path)); got != content {
			t.Errorf("content = %q, want %q", got, content)
		}
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v (err %v), want 0640", info.Mode(), err)
	}
	assertDirHolds(t, dir, "config.yaml")

	// Renaming onto a non-empty directory fails: the error names the path, the temp file is removed.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(sub, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), sub) {
		t.Errorf("error = %v, want a rename error naming %s", err, sub)
	}
	assertDirHolds(t, dir, "config.yaml", "sub")
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o644); err == nil {
		t.Errorf("writing into a missing directory succeeded")
	}
}

// TestHookMidWriteSeesHalfTheData checks where the crash hook fires: the temp file holds the
// header and exactly half of the data, and the final name does not exist yet.
func TestHookMidWriteSeesHalfTheData(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "h.safetensors")
	ts := []NamedTensor{{"a", randomTensor(t, 1, dtypes.Float32, 100)}, {"b", randomTensor(t, 2, dtypes.Int8, 37)}}
	called := 0
	TestHookMidWrite = func() {
		called++
		matches, _ := filepath.Glob(filepath.Join(dir, ".h.safetensors.tmp-*"))
		if len(matches) != 1 {
			t.Fatalf("temp files during write: %q", matches)
		}
		f := readFile(t, matches[0])
		n := binary.LittleEndian.Uint64(f[:8])
		if want := 8 + int(n) + (400+37)/2; len(f) != want {
			t.Errorf("temp file has %d bytes at the hook, want %d (header + half the data)", len(f), want)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("final file exists during the write: %v", err)
		}
	}
	defer func() { TestHookMidWrite = nil }()
	if err := WriteSafetensors(path, ts, map[string]string{MetadataCRC: "bogus"}); err != nil {
		t.Fatal(err)
	}
	if called != 1 {
		t.Errorf("hook called %d times, want 1", called)
	}
	got, _, err := ReadSafetensors(path) // the caller's bogus CRC was replaced by the real one.
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, ts, got)
}
