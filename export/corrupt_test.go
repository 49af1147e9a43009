package export

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
)

// expectReadError checks that ReadModel rejects path with an error naming it and containing every
// want, and returns no model.
func expectReadError(t *testing.T, path string, wants ...string) {
	t.Helper()
	m, err := ReadModel(path)
	if err == nil {
		t.Fatalf("ReadModel(%s) succeeded, want an error containing %q", path, wants)
	}
	if m != nil {
		t.Errorf("ReadModel returned a model with its error")
	}
	for _, want := range append([]string{path}, wants...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// rewriteHeader parses the file's JSON header, lets edit change it, and writes the file back with
// the new header (unpadded) and the same data section.
func rewriteHeader(t *testing.T, file []byte, edit func(h map[string]json.RawMessage)) []byte {
	t.Helper()
	n := binary.LittleEndian.Uint64(file[:8])
	var h map[string]json.RawMessage
	if err := json.Unmarshal(file[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	header, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), file[8+n:]...)
}

// entry is a tensor's header entry.
type entry struct {
	DType       string  `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// editEntry rewrites the header entry of tensor name.
func editEntry(t *testing.T, h map[string]json.RawMessage, name string, edit func(e *entry)) {
	t.Helper()
	var e entry
	if err := json.Unmarshal(h[name], &e); err != nil {
		t.Fatalf("entry %q: %v", name, err)
	}
	edit(&e)
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	h[name] = raw
}

// TestReadModelRejectsCorruptFiles: every structural defect of an exported file is an error that
// names the file and the problem.
func TestReadModelRejectsCorruptFiles(t *testing.T) {
	_, path := writeTiny(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const first, second = "down0/downsample/bias", "down0/downsample/kernel" // first two in data order
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		wants  []string
	}{
		{"header length past EOF", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[:8], uint64(len(b)))
			return b
		}, []string{"header length", "exceeds the", "truncated"}},
		{"header not JSON", func(b []byte) []byte { copy(b[8:], "#!"); return b }, []string{"header is not a JSON object", "must begin with '{'"}},
		{"header JSON broken", func(b []byte) []byte { b[9] = '}'; return b }, []string{"invalid header JSON"}},
		{"overlapping offsets", func(b []byte) []byte {
			return rewriteHeader(t, b, func(h map[string]json.RawMessage) {
				editEntry(t, h, second, func(e *entry) { e.DataOffsets[0] -= 4; e.DataOffsets[1] -= 4 })
			})
		}, []string{"tensor " + `"` + second + `"`, "overlap tensor " + `"` + first + `"`}},
		{"out of range offsets", func(b []byte) []byte {
			return rewriteHeader(t, b, func(h map[string]json.RawMessage) {
				editEntry(t, h, "up0/res0/skip/kernel", func(e *entry) { e.DataOffsets[0] += 1 << 30; e.DataOffsets[1] += 1 << 30 })
			})
		}, []string{`tensor "up0/res0/skip/kernel"`, "run past the"}},
		{"gap", func(b []byte) []byte {
			return rewriteHeader(t, b, func(h map[string]json.RawMessage) {
				editEntry(t, h, second, func(e *entry) { e.DataOffsets[0] += 4; e.DataOffsets[1] += 4 })
			})
		}, []string{`tensor "` + second + `"`, "leave a gap after byte 32"}},
		{"offsets past the data", func(b []byte) []byte { return b[:len(b)-4] }, []string{"run past the", "data section (file truncated?)"}},
		{"misordered offsets", func(b []byte) []byte {
			return rewriteHeader(t, b, func(h map[string]json.RawMessage) {
				editEntry(t, h, first, func(e *entry) { e.DataOffsets[0], e.DataOffsets[1] = e.DataOffsets[1], e.DataOffsets[0] })
			})
		}, []string{`tensor "` + first + `"`, "end before begin"}},
		{"offsets length not dtype×shape", func(b []byte) []byte {
			return rewriteHeader(t, b, func(h map[string]json.RawMessage) {
				editEntry(t, h, first, func(e *entry) { e.Shape[0]++ })
			})
		}, []string{`tensor "` + first + `"`, "span 32 bytes, but F32 [9] needs 36"}},
		{"unknown dtype", func(b []byte) []byte {
			return rewriteHeader(t, b, func(h map[string]json.RawMessage) {
				editEntry(t, h, first, func(e *entry) { e.DType = "F8_E4M3" })
			})
		}, []string{`tensor "` + first + `"`, `unsupported dtype "F8_E4M3"`}},
		{"data corrupted", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, []string{"CRC-32C", "file is corrupt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.safetensors")
			if err := os.WriteFile(p, tc.mutate(append([]byte(nil), good...)), 0o644); err != nil {
				t.Fatal(err)
			}
			expectReadError(t, p, tc.wants...)
		})
	}
}

// writeRaw writes tensors and metadata with the plain safetensors writer (bypassing Check).
func writeRaw(t *testing.T, ts map[string]*tensors.Tensor, md map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	var named []checkpoints.NamedTensor
	for name, x := range ts {
		named = append(named, checkpoints.NamedTensor{Name: name, Tensor: x})
	}
	if err := checkpoints.WriteSafetensors(path, named, md); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadModelRejectsBadContents: structurally valid safetensors files whose tensors or metadata
// do not make a fewstep-model/1 model.
func TestReadModelRejectsBadContents(t *testing.T) {
	m := tinyModel(t)
	md0, err := m.metadata()
	if err != nil {
		t.Fatal(err)
	}
	zeros := func(dt dtypes.DType, dims ...int) *tensors.Tensor { return tensors.FromShape(shapes.Make(dt, dims...)) }
	tests := []struct {
		name    string
		tensors func(ts map[string]*tensors.Tensor)
		meta    func(md map[string]string)
		wants   []string
	}{
		{"missing tensor", func(ts map[string]*tensors.Tensor) { delete(ts, "out/conv/kernel") }, nil,
			[]string{`missing tensor "out/conv/kernel"`}},
		{"missing tensors", func(ts map[string]*tensors.Tensor) {
			for name := range ts {
				if strings.HasPrefix(name, "up") {
					delete(ts, name)
				}
			}
		}, nil, []string{`missing tensors "up0/res0/conv1/bias", "up0/res0/conv1/kernel"`, "more (of"}},
		{"extra tensor", func(ts map[string]*tensors.Tensor) { ts["opt/m/stem/kernel"] = zeros(dtypes.Float32, 2) }, nil,
			[]string{`unexpected tensor "opt/m/stem/kernel"`, "not part of the network"}},
		{"prefixed names", func(ts map[string]*tensors.Tensor) {
			for name, x := range maps.Clone(ts) {
				ts["ema/"+name] = x
				delete(ts, name)
			}
		}, nil, []string{"missing tensors"}},
		{"shape mismatch", func(ts map[string]*tensors.Tensor) { ts["stem/bias"] = zeros(dtypes.Float32, 16) }, nil,
			[]string{`tensor "stem/bias": shape (Float32)[16], but the model config needs (Float32)[8]`}},
		{"wrong dtype", func(ts map[string]*tensors.Tensor) { ts["stem/bias"] = zeros(dtypes.Float16, 8) }, nil,
			[]string{`tensor "stem/bias": shape (Float16)[8], but the model config needs (Float32)[8]`}},
		{"config implies other tensors", nil, func(md map[string]string) {
			md[KeyModel] = strings.Replace(md[KeyModel], `"base_channels":8`, `"base_channels":16`, 1)
		}, []string{"shape", "but the model config needs"}},
		{"missing export_format", nil, func(md map[string]string) { delete(md, KeyFormat) },
			[]string{"no fewstep.export_format metadata", "not an exported fewstep model"}},
		{"unknown export_format", nil, func(md map[string]string) { md[KeyFormat] = "fewstep-model/2" },
			[]string{`unknown export format fewstep.export_format="fewstep-model/2"`}},
		{"unknown key", nil, func(md map[string]string) { md["fewstep.colour"] = "blue" },
			[]string{`unknown metadata key "fewstep.colour"`}},
		{"model not JSON", nil, func(md map[string]string) { md[KeyModel] = "unet" },
			[]string{"metadata fewstep.model: invalid JSON"}},
		{"model key unknown", nil, func(md map[string]string) {
			md[KeyModel] = strings.Replace(md[KeyModel], `"arch"`, `"archh"`, 1)
		}, []string{"metadata fewstep.model", "archh"}},
		{"model key missing", nil, func(md map[string]string) {
			md[KeyModel] = strings.Replace(md[KeyModel], `"groups":4,`, ``, 1)
		}, []string{"metadata fewstep.model", "groups"}},
		{"fractional int", nil, func(md map[string]string) {
			md[KeyModel] = strings.Replace(md[KeyModel], `"groups":4`, `"groups":4.5`, 1)
		}, []string{"metadata fewstep.model", "groups"}},
		{"invalid model config", nil, func(md map[string]string) {
			md[KeyModel] = strings.Replace(md[KeyModel], `"groups":4`, `"groups":3`, 1)
		}, []string{"metadata fewstep.model: model.groups: 3 does not divide"}},
		{"unknown schedule", nil, func(md map[string]string) {
			md[KeyDiffusion] = strings.Replace(md[KeyDiffusion], `"cosine"`, `"sqrt"`, 1)
		}, []string{`metadata fewstep.diffusion: diffusion.schedule: unknown value "sqrt"`}},
		{"bad shift", nil, func(md map[string]string) {
			md[KeyDiffusion] = strings.Replace(md[KeyDiffusion], `"shift":1`, `"shift":-2`, 1)
		}, []string{"metadata fewstep.diffusion: diffusion.shift: must be a positive number"}},
		{"classes disagree", nil, func(md map[string]string) {
			md[KeyData] = strings.Replace(md[KeyData], `"num_classes":10`, `"num_classes":9`, 1)
		}, []string{"num_classes 10 disagrees with fewstep.data num_classes 9"}},
		{"missing data", nil, func(md map[string]string) { delete(md, KeyData) }, []string{"metadata fewstep.data is missing"}},
		{"data key unknown", nil, func(md map[string]string) {
			md[KeyData] = strings.Replace(md[KeyData], `"hflip"`, `"vflip"`, 1)
		}, []string{"metadata fewstep.data", "vflip"}},
		{"sample without steps", nil, func(md map[string]string) {
			md[KeySample] = strings.Replace(md[KeySample], `"steps":4,`, ``, 1)
		}, []string{`metadata fewstep.sample: missing key "steps"`}},
		{"class names count", nil, func(md map[string]string) { md[KeyClassNames] = `["a","b"]` },
			[]string{"metadata fewstep.class_names: 2 names for 10 classes"}},
		{"distilled without times", nil, func(md map[string]string) { md[KeyDistilled] = "true" },
			[]string{"metadata fewstep.student_times is missing"}},
		{"student times ascending", nil, func(md map[string]string) {
			md[KeyDistilled], md[KeyStudentTimes] = "true", "[0.5,1]"
		}, []string{"metadata fewstep.student_times: want times descending in (0, t_max=1]"}},
		{"student spacing of a teacher", nil, func(md map[string]string) {
			md[KeySample] = strings.Replace(md[KeySample], `"spacing":"trailing"`, `"spacing":"student"`, 1)
		}, []string{"metadata fewstep.sample: spacing student is for distilled models"}},
		{"bad distilled", nil, func(md map[string]string) { md[KeyDistilled] = "yes" },
			[]string{`metadata fewstep.distilled: want true or false, got "yes"`}},
		{"bad weights", nil, func(md map[string]string) { md[KeyWeights] = "opt" },
			[]string{`metadata fewstep.weights: want "ema" or "model", got "opt"`}},
		{"bad step", nil, func(md map[string]string) { md[KeySourceStep] = "forty" },
			[]string{`metadata fewstep.source_step: want an integer, got "forty"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, md := maps.Clone(m.Tensors), maps.Clone(md0)
			if tc.tensors != nil {
				tc.tensors(ts)
			}
			if tc.meta != nil {
				tc.meta(md)
			}
			expectReadError(t, writeRaw(t, ts, md), tc.wants...)
		})
	}
}

// TestReadModelWithoutShift: files written before diffusion.shift existed lack the key and read as
// unshifted; every other fewstep.diffusion key stays required.
func TestReadModelWithoutShift(t *testing.T) {
	m := tinyModel(t)
	md, err := m.metadata()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md[KeyDiffusion], `"shift":1`) {
		t.Fatalf("fewstep.diffusion %s lacks \"shift\":1", md[KeyDiffusion])
	}
	md[KeyDiffusion] = strings.Replace(md[KeyDiffusion], `,"shift":1`, ``, 1)
	md[KeyDiffusion] = strings.Replace(md[KeyDiffusion], `"shift":1,`, ``, 1)
	got, err := ReadModel(writeRaw(t, m.Tensors, md))
	if err != nil {
		t.Fatal(err)
	}
	if got.Diffusion.Shift != 1 {
		t.Errorf("Diffusion.Shift = %g, want 1", got.Diffusion.Shift)
	}
}

// TestReadModelRejectsCheckpoint: a training checkpoint is not an exported model.
func TestReadModelRejectsCheckpoint(t *testing.T) {
	m := tinyModel(t)
	run := checkpoints.RunDir(t.TempDir())
	var named []checkpoints.NamedTensor
	for name, x := range m.Tensors {
		named = append(named, checkpoints.NamedTensor{Name: "ema/" + name, Tensor: x}, checkpoints.NamedTensor{Name: "model/" + name, Tensor: x})
	}
	path, err := checkpoints.Save(run, 3, named, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	expectReadError(t, path, "no fewstep.export_format metadata", "fewstep export -run RUN_DIR")
}

// TestWriteRejectsInvalidModels: Write checks like ReadModel and leaves no file behind.
func TestWriteRejectsInvalidModels(t *testing.T) {
	m := tinyModel(t)
	delete(m.Tensors, "stem/kernel")
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Write(path, m); err == nil || !strings.Contains(err.Error(), `missing tensor "stem/kernel"`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Write error = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Write left %s behind (%v)", path, err)
	}
}
