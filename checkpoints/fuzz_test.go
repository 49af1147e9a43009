package checkpoints

import (
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/gomlx/compute/dtypes"
)

// FuzzReadSafetensors feeds arbitrary bytes to ReadSafetensors: it must never panic nor allocate
// beyond the file, and whatever it accepts must pass verifySafetensors too and survive a
// WriteSafetensors → ReadSafetensors round trip bit for bit. `make fuzz` runs it for a few seconds.
func FuzzReadSafetensors(f *testing.F) {
	_, good := writeGoodF(f)
	f.Add(good)
	for _, h := range []string{
		`{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"BOOL","shape":[2,1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[],"data_offsets":[2,4]}}`,
		`{"e":{"dtype":"I64","shape":[0,3],"data_offsets":[0,0]}}`,
		`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}`,
		`{}`,
	} {
		file := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		f.Add(append(append(file, h...), 1, 0, 0, 0, 0, 0, 0, 0))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(dir, "fuzz.safetensors")
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		ts, md, err := ReadSafetensors(path)
		if verr := verifySafetensors(path); (err == nil) != (verr == nil) {
			t.Fatalf("ReadSafetensors error %v but verifySafetensors error %v", err, verr)
		}
		if err != nil {
			return
		}
		var named []NamedTensor
		for name, x := range ts {
			named = append(named, NamedTensor{name, x})
		}
		again := filepath.Join(dir, "again.safetensors")
		if err := writeNoSync(again, named, md); err != nil {
			if named != nil && isWriterOnlyRestriction(named) {
				return
			}
			t.Fatalf("accepted file does not write back: %v", err)
		}
		ts2, md2, err := ReadSafetensors(again)
		if err != nil {
			t.Fatalf("written-back file does not read: %v", err)
		}
		assertSameTensors(t, named, ts2)
		delete(md, MetadataCRC)
		delete(md2, MetadataCRC)
		if !maps.Equal(md, md2) {
			t.Fatalf("metadata %q came back as %q", md, md2)
		}
	})
}

// isWriterOnlyRestriction reports a file the reader accepts but the writer refuses by design: an
// empty tensor name.
func isWriterOnlyRestriction(ts []NamedTensor) bool {
	for _, nt := range ts {
		if nt.Name == "" {
			return true
		}
	}
	return false
}

// writeGoodF writes the two-tensor file of writeGood for fuzz seeds and returns its path and bytes.
func writeGoodF(f *testing.F) (string, []byte) {
	path := filepath.Join(f.TempDir(), "good.safetensors")
	ts := []NamedTensor{{"beta", randomTensor(f, 2, dtypes.Float32, 8)}, {"alpha", randomTensor(f, 1, dtypes.Float32, 4)}}
	if err := WriteSafetensors(path, ts, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	return path, readFile(f, path)
}

// writeNoSync is WriteSafetensors without the temp file and fsyncs (which make fuzzing crawl).
func writeNoSync(path string, ts []NamedTensor, md map[string]string) error {
	sorted := slices.Clone(ts)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header, total, err := buildHeader(sorted, md)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeSafetensorsBody(f, header, sorted, total, nil); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
