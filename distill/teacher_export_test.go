package distill

import (
	"bytes"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/trainer"
)

// TestTeacherFromExportedFile: a teacher read from its exported file (Teacher.File) gives the same
// /teacher and student-init /model variables, bit for bit, and the same step as from its run.
func TestTeacherFromExportedFile(t *testing.T) {
	step, ts, _, err := checkpoints.LoadLatest(fixture.teacher.Dir)
	if err != nil {
		t.Fatal(err)
	}
	weights, err := export.FromCheckpoint(ts, trainer.EMAScope)
	if err != nil {
		t.Fatal(err)
	}
	job := tinyJob(t.TempDir(), 1)
	m := &export.Model{Model: job.Model, Diffusion: job.Diffusion, Data: job.Data,
		Sample: export.Sampling{Sampler: "ddim", Steps: 2, CFG: 2, Spacing: "trailing"},
		Source: export.Source{Run: string(fixture.teacher.Dir), Step: step, Weights: export.WeightsEMA}, Tensors: weights}
	path := filepath.Join(t.TempDir(), "teacher.safetensors")
	if err := export.Write(path, m); err != nil {
		t.Fatal(err)
	}
	student := job.Model
	student.DropBlocks = []string{"mid/attn"}
	load := func(tc Teacher) (*model.Store, int64) {
		store := model.NewStore()
		got, err := LoadTeacher(store, tc, true, &student)
		if err != nil {
			t.Fatal(err)
		}
		return store, got
	}
	fromRun, runStep := load(fixture.teacher)
	fileTeacher := fixture.teacher
	fileTeacher.Dir, fileTeacher.File = checkpoints.RunDir(path), path
	fromFile, fileStep := load(fileTeacher)
	if runStep != fileStep || runStep != step {
		t.Errorf("steps: run %d, file %d, checkpoint %d", runStep, fileStep, step)
	}
	a, b := variables(t, fromRun), variables(t, fromFile)
	if !slices.Equal(slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))) || len(a) == 0 {
		t.Fatalf("variables differ: run %v, file %v", slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
	}
	for path, va := range a {
		if !bytes.Equal(va, b[path]) {
			t.Errorf("variable %s differs between the run and the file", path)
		}
		if fromFile.GetVariable(path).Trainable != fromRun.GetVariable(path).Trainable {
			t.Errorf("variable %s: trainable differs", path)
		}
	}
}

// variables returns every variable's raw bytes by path.
func variables(t *testing.T, store *model.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for v := range store.IterVariables() {
		out[v.Path()] = tensorBytes(t, v.MustValue())
	}
	return out
}

func tensorBytes(t *testing.T, x *tensors.Tensor) []byte {
	t.Helper()
	var out []byte
	if err := x.ConstBytes(func(d []byte) { out = slices.Clone(d) }); err != nil {
		t.Fatal(err)
	}
	return out
}
