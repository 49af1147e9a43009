package checkpoints

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
)

func TestRunDirLayout(t *testing.T) {
	r := RunDir(filepath.Join("runs", "mnist"))
	tests := []struct{ got, want string }{
		{r.ConfigPath(), "runs/mnist/config.yaml"},
		{r.MetricsPath(), "runs/mnist/metrics.jsonl"},
		{r.CheckpointDir(), "runs/mnist/checkpoints"},
		{r.CheckpointPath(1000), "runs/mnist/checkpoints/ckpt-000001000.safetensors"},
		{r.CheckpointPath(1234567890), "runs/mnist/checkpoints/ckpt-1234567890.safetensors"},
		{r.SamplesDir(), "runs/mnist/samples"},
		{r.SamplePath(1000), "runs/mnist/samples/step-000001000.png"},
		{r.FinalSamplePath(), "runs/mnist/samples/final.png"},
	}
	for _, tc := range tests {
		if tc.got != filepath.FromSlash(tc.want) {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	dir := RunDir(filepath.Join(t.TempDir(), "a", "run"))
	for range 2 { // idempotent
		if err := dir.Create(); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{string(dir), dir.CheckpointDir(), dir.SamplesDir()} {
		if info, err := os.Stat(d); err != nil || !info.IsDir() {
			t.Errorf("%s not created: %v", d, err)
		}
	}
	if err := RunDir("").Create(); err == nil {
		t.Error("Create of an empty RunDir succeeded")
	}
}

func TestCheckpointNames(t *testing.T) {
	tests := []struct {
		name string
		step int64
		ok   bool
	}{
		{"ckpt-000001000.safetensors", 1000, true},
		{"ckpt-1234567890.safetensors", 1234567890, true},
		{"ckpt-1000.safetensors", 0, false},
		{"ckpt-00000100a.safetensors", 0, false},
		{"ckpt-+00000100.safetensors", 0, false},
		{"ckpt-000001000.safetensors.bak", 0, false},
		{".ckpt-000001000.safetensors.tmp-123", 0, false},
		{"ckpt-99999999999999999999.safetensors", 0, false},
	}
	for _, tc := range tests {
		step, ok := parseCheckpointName(tc.name)
		if step != tc.step || ok != tc.ok {
			t.Errorf("parseCheckpointName(%q) = %d, %v; want %d, %v", tc.name, step, ok, tc.step, tc.ok)
		}
	}
	if !isCheckpointTemp(".ckpt-000001000.safetensors.tmp-123") || isCheckpointTemp(".config.yaml.tmp-1") {
		t.Error("isCheckpointTemp misclassifies")
	}
}

// stateAt is deterministic training state for a step.
func stateAt(t testing.TB, step int64, n int) []NamedTensor {
	return []NamedTensor{
		{"student/w", randomTensor(t, uint64(step), dtypes.Float32, n)},
		{"optimizer/step", randomTensor(t, uint64(step)+1000, dtypes.Int64)},
	}
}

func TestSaveKeepListLoad(t *testing.T) {
	r := RunDir(filepath.Join(t.TempDir(), "run")) // Save creates the checkpoints dir.
	if steps, err := List(r); err != nil || len(steps) != 0 {
		t.Fatalf("List of a missing dir = %v, %v", steps, err)
	}
	if _, _, _, err := LoadLatest(r); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadLatest with no checkpoint: %v, want os.ErrNotExist", err)
	}
	for _, step := range []int64{100, 200, 300, 400, 500} {
		path, err := Save(r, step, stateAt(t, step, 16), map[string]string{"phase": "train"}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if path != r.CheckpointPath(step) {
			t.Errorf("Save returned %q, want %q", path, r.CheckpointPath(step))
		}
	}
	// Junk that List must ignore.
	for _, junk := range []string{"notes.txt", "ckpt-abc.safetensors", "ckpt-000000700.safetensors.bak"} {
		if err := os.WriteFile(filepath.Join(r.CheckpointDir(), junk), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(r.CheckpointDir(), "ckpt-000000900.safetensors"), 0o755); err != nil {
		t.Fatal(err)
	}
	steps, err := List(r)
	if err != nil || !slices.Equal(steps, []int64{300, 400, 500}) {
		t.Fatalf("List = %v, %v; want [300 400 500]", steps, err)
	}
	step, ts, md, err := LoadLatest(r)
	if err != nil || step != 500 {
		t.Fatalf("LoadLatest = %d, %v", step, err)
	}
	assertSameTensors(t, stateAt(t, 500, 16), ts)
	if md["phase"] != "train" || md[MetadataStep] != "500" {
		t.Errorf("metadata = %v", md)
	}
	ts, _, err = LoadStep(r, 300)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, stateAt(t, 300, 16), ts)
	if _, _, err := LoadStep(r, 100); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "ckpt-000000100") {
		t.Errorf("LoadStep of a pruned step: %v", err)
	}

	// keep <= 0 keeps everything.
	for _, step := range []int64{600, 700} {
		if _, err := Save(r, step, stateAt(t, step, 4), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	if steps, _ := List(r); !slices.Equal(steps, []int64{300, 400, 500, 600, 700}) {
		t.Errorf("after keep=0 List = %v", steps)
	}
	// Saving an older step with keep=1 deletes all others but never the file just written.
	if _, err := Save(r, 50, stateAt(t, 50, 4), nil, 1); err != nil {
		t.Fatal(err)
	}
	if steps, _ := List(r); !slices.Equal(steps, []int64{50, 700}) {
		t.Errorf("after Save(50, keep=1) List = %v, want [50 700]", steps)
	}
	if _, err := Save(r, -1, nil, nil, 1); err == nil {
		t.Error("Save of a negative step succeeded")
	}
}

func TestLoadLatestCorruptNewest(t *testing.T) {
	r := RunDir(t.TempDir())
	for _, step := range []int64{1, 2, 3} {
		if _, err := Save(r, step, stateAt(t, step, 64), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := func(step int64) {
		p := r.CheckpointPath(step)
		b := readFile(t, p)
		b[len(b)-10] ^= 0xff // inside student/w's data: CRC mismatch.
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corrupt(3)
	corrupt(2)
	_, _, _, err := LoadLatest(r)
	if err == nil {
		t.Fatal("LoadLatest silently accepted a corrupt newest checkpoint")
	}
	for _, want := range []string{r.CheckpointPath(3), "CRC-32C", "previous valid checkpoint is " + r.CheckpointPath(1)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if want := "move " + r.CheckpointPath(3) + " and " + r.CheckpointPath(2) + " away"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q should tell to %q", err, want)
	}
	// With no valid fallback the error says so.
	corrupt(1)
	if _, _, _, err := LoadLatest(r); err == nil || !strings.Contains(err.Error(), "no earlier checkpoint is valid") {
		t.Errorf("LoadLatest error = %v", err)
	}
	// A checkpoint renamed to another step is caught by the step metadata.
	if _, err := Save(r, 4, stateAt(t, 4, 8), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(r.CheckpointPath(4), r.CheckpointPath(5)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadStep(r, 5); err == nil || !strings.Contains(err.Error(), `fewstep.step="4"`) {
		t.Errorf("LoadStep of a renamed checkpoint: %v", err)
	}
}
