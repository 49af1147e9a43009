package trainer

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/export"
)

// TestInitFromExportedFile: trainer.init_from accepts an exported model file (unprefixed names):
// /model starts as the file's weights exactly (whatever init_ema says: the file holds one set), a
// run trains from it, and an invalid file is rejected with the problem named.
func TestInitFromExportedFile(t *testing.T) {
	src := tinyJob(t, t.TempDir(), 4)
	mustTrain(t, src, Options{})
	step, ts, _, err := checkpoints.LoadLatest(src.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	weights, err := export.FromCheckpoint(ts, EMAScope)
	if err != nil {
		t.Fatal(err)
	}
	m := &export.Model{Model: src.Model, Diffusion: src.Diffusion, Data: src.Data,
		Sample: export.Sampling{Sampler: "ddim", Steps: 4, CFG: 2, Spacing: "trailing"},
		Source: export.Source{Run: string(src.RunDir), Step: step, Weights: export.WeightsEMA}, Tensors: weights}
	file := filepath.Join(t.TempDir(), "model.safetensors")
	if err := export.Write(file, m); err != nil {
		t.Fatal(err)
	}
	for _, ema := range []bool{true, false} {
		store := model.NewStore()
		n, err := InitWeights(store, file, ema, nil)
		if err != nil || n != len(weights) {
			t.Fatalf("InitWeights: %d tensors of %d, %v", n, len(weights), err)
		}
		for v := range store.IterVariables() {
			rest := strings.TrimPrefix(v.Path(), "/"+ModelScope+"/")
			want := tensors.MustCopyFlatData[float32](ts[EMAScope+"/"+rest])
			if !slices.Equal(tensors.MustCopyFlatData[float32](v.MustValue()), want) || !v.Trainable {
				t.Fatalf("ema=%v: %s not copied from the file's %s (or not trainable)", ema, v.Path(), rest)
			}
		}
	}
	tune := tinyJob(t, t.TempDir(), 2)
	tune.Trainer.InitFrom = file
	mustTrain(t, tune, Options{})

	delete(m.Tensors, "out/conv/bias")
	var named []checkpoints.NamedTensor
	for name, x := range m.Tensors {
		named = append(named, checkpoints.NamedTensor{Name: name, Tensor: x})
	}
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := checkpoints.WriteSafetensors(bad, named, map[string]string{export.KeyFormat: export.Format}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInitWeights(bad, true); err == nil || !strings.Contains(err.Error(), "trainer.init_from "+bad) || !strings.Contains(err.Error(), "fewstep.model is missing") {
		t.Fatalf("bad exported file: %v", err)
	}
}
