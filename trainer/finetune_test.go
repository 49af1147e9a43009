package trainer

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/models"
)

// scripted is an Evaluate hook whose fid follows a script by step (the mechanics of early stopping
// do not depend on where the numbers come from); it also checks that it sees the EMA weights.
func scripted(t *testing.T, fid map[int]float64) func(int, *model.Store) (map[string]float64, error) {
	return func(step int, store *model.Store) (map[string]float64, error) {
		n := 0
		for v := range store.IterVariables() {
			if strings.HasPrefix(v.Path(), "/"+EMAScope+"/") {
				n++
			}
		}
		v, ok := fid[step]
		if n == 0 || !ok {
			return nil, fmt.Errorf("step %d: %d EMA variables, scripted %v", step, n, ok)
		}
		return map[string]float64{"fid": v, "precision": 0.5}, nil
	}
}

// TestEarlyStoppingKeepsBest: evaluations every 2 steps with fid 5, 3, 4, 4.5 and patience 2 stop
// the run at step 8 with the best at step 4, recorded in best.json and kept despite
// keep_checkpoints 1; a run split at step 5 and resumed restores the early-stopping state and stops
// at the same step with the same best (a fresh state would take step 6 as the best and go on).
func TestEarlyStoppingKeepsBest(t *testing.T) {
	fid := map[int]float64{2: 5, 4: 3, 6: 4, 8: 4.5, 10: 1, 12: 1}
	job := func(dir string) Job {
		j := tinyJob(t, dir, 12)
		j.Trainer.EvalEvery, j.Trainer.Patience, j.Trainer.KeepCheckpoints, j.Trainer.LogEvery = 2, 2, 1, 3
		return j
	}
	straight := job(t.TempDir())
	res := mustTrain(t, straight, Options{Evaluate: scripted(t, fid)})
	split := job(t.TempDir())
	mustTrain(t, split, Options{Evaluate: scripted(t, fid), StopAt: 5})
	res2 := mustTrain(t, split, Options{Evaluate: scripted(t, fid), Resume: true})
	for i, r := range []*Result{res, res2} {
		if !r.EarlyStopped || r.Steps != 8 || r.BestStep != 4 || r.Best != 3 {
			t.Fatalf("run %d: %+v, want early stop at 8 with best fid 3 at step 4", i, *r)
		}
	}
	for _, j := range []Job{straight, split} {
		b, ok, err := checkpoints.ReadBest(j.RunDir)
		if err != nil || !ok || b.Step != 4 || b.Metric != "fid" || b.Value != 3 {
			t.Fatalf("%s: best.json %+v %v %v", j.RunDir, b, ok, err)
		}
		steps, err := checkpoints.List(j.RunDir)
		if err != nil || !slices.Contains(steps, 4) || steps[len(steps)-1] != 8 {
			t.Fatalf("%s: checkpoints %v (want 4 kept and 8 newest)", j.RunDir, steps)
		}
		best, err := ResolveCheckpoint(j.RunDir, "best")
		if err != nil || best != 4 {
			t.Fatalf("ResolveCheckpoint best = %d, %v", best, err)
		}
		recs, err := ReadMetrics(j.RunDir.MetricsPath())
		if err != nil {
			t.Fatal(err)
		}
		var evals []int
		for _, r := range recs {
			if r.Eval != nil {
				evals = append(evals, r.Step)
			}
		}
		if !slices.Equal(evals, []int{2, 4, 6, 8}) {
			t.Fatalf("%s: evaluation records at steps %v, want 2 4 6 8", j.RunDir, evals)
		}
	}
	la, lb := lossSeq(t, straight.RunDir), lossSeq(t, split.RunDir)
	if !slices.Equal(la, lb) {
		t.Fatalf("loss sequences differ after resume:\n%v\n%v", la, lb)
	}
}

// TestInitFromStartsFromTrainedWeights: init_from copies a run's EMA (or raw) weights into /model
// exactly; a fine-tuning run from it (quality tuning's start) resumes exactly — for the U-Net and
// for the transformer (model.arch dit).
func TestInitFromStartsFromTrainedWeights(t *testing.T) {
	for _, arch := range []string{models.ArchUNet, models.ArchDiT} {
		t.Run(arch, func(t *testing.T) {
			initFromTrained(t, func(dir string, steps int) Job {
				j := tinyJob(t, dir, steps)
				if arch == models.ArchDiT {
					j.Model.Arch, j.Model.PatchSize = models.ArchDiT, 4
					j.Model.DiT = models.DiTConfig{Hidden: 16, Depth: 2, Heads: 2, MLPRatio: 2}
				}
				return j
			})
		})
	}
}

func initFromTrained(t *testing.T, tinyJob func(dir string, steps int) Job) {
	src := tinyJob(t.TempDir(), 4)
	mustTrain(t, src, Options{})
	_, ts, _, err := checkpoints.LoadLatest(src.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ema := range []bool{true, false} {
		store := model.NewStore()
		n, err := InitWeights(store, string(src.RunDir), ema, nil)
		if err != nil || n == 0 {
			t.Fatalf("InitWeights: %d tensors, %v", n, err)
		}
		from := map[bool]string{true: EMAScope, false: ModelScope}[ema]
		for v := range store.IterVariables() {
			rest := strings.TrimPrefix(v.Path(), "/"+ModelScope+"/")
			want := tensors.MustCopyFlatData[float32](ts[from+"/"+rest])
			if !slices.Equal(tensors.MustCopyFlatData[float32](v.MustValue()), want) || !v.Trainable {
				t.Fatalf("ema=%v: %s not copied from %s/%s (or not trainable)", ema, v.Path(), from, rest)
			}
		}
	}
	if _, err := InitWeights(model.NewStore(), t.TempDir()+"/missing.safetensors", true, nil); err == nil || !strings.Contains(err.Error(), "init_from") {
		t.Fatalf("missing source: %v", err)
	}
	tune := func(dir string) Job {
		j := tinyJob(dir, 6)
		j.Trainer.InitFrom, j.Trainer.LR = string(src.RunDir), 1e-4
		return j
	}
	a, b := tune(t.TempDir()), tune(t.TempDir())
	mustTrain(t, a, Options{})
	mustTrain(t, b, Options{StopAt: 3})
	mustTrain(t, b, Options{Resume: true})
	la, lb := lossSeq(t, a.RunDir), lossSeq(t, b.RunDir)
	if len(la) != 6 || !slices.Equal(la, lb) {
		t.Fatalf("fine-tuning losses differ after resume:\n%v\n%v", la, lb)
	}
	// The fine-tuned run starts where the source ended: its first loss is far below a fresh run's.
	fresh := tinyJob(t.TempDir(), 1)
	mustTrain(t, fresh, Options{})
	if lf := lossSeq(t, fresh.RunDir); !(la[0] < lf[0]) {
		t.Fatalf("first fine-tuning loss %g not below a fresh model's %g", la[0], lf[0])
	}
}
