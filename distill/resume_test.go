package distill

import (
	"context"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/trainer"
)

// runPair is one distillation run trained straight through and its twin stopped at a step and
// resumed: their metric records and final checkpoints.
type runPair struct {
	ra, rb []trainer.Record
	ta, tb map[string]*tensors.Tensor
}

// straightAndResumed trains job(dirA) with method in one go and job(dirB) stopped at `stop` and
// then resumed, each with a fresh method from the factory.
func straightAndResumed(t *testing.T, job func(dir string) trainer.Job, method func() trainer.MethodFactory, stop int) runPair {
	t.Helper()
	run := func(stops ...int) ([]trainer.Record, map[string]*tensors.Tensor) {
		j := job(t.TempDir())
		j.Distilled = true
		for i, s := range stops {
			opt := trainer.Options{Out: io.Discard, Resume: i > 0, StopAt: s, Method: method()}
			if _, err := trainer.Train(context.Background(), backendT(t), j, opt); err != nil {
				t.Fatal(err)
			}
		}
		recs, err := trainer.ReadMetrics(j.RunDir.MetricsPath())
		if err != nil {
			t.Fatal(err)
		}
		_, ts, _, err := checkpoints.LoadLatest(j.RunDir)
		if err != nil {
			t.Fatal(err)
		}
		return recs, ts
	}
	var p runPair
	p.ra, p.ta = run(0)
	p.rb, p.tb = run(stop, 0)
	return p
}

// checkExact fails unless both runs logged the same records (every term of want(step), present
// and finite, equal) and ended with bit-identical checkpoints; it returns the number of tensors
// per top-level scope.
// checkAdapters fails the test when the straight run's checkpoint holds no LoRA adapter (lora_up).
func (p runPair) checkAdapters(t *testing.T, what string) {
	t.Helper()
	for name := range p.ta {
		if strings.HasSuffix(name, "/lora_up") {
			return
		}
	}
	t.Fatalf("no adapters in the %s checkpoint", what)
}

func (p runPair) checkExact(t *testing.T, steps int, want func(step int) []string) map[string]int {
	t.Helper()
	if len(p.ra) != steps || len(p.rb) != steps {
		t.Fatalf("%d and %d metric records, want %d", len(p.ra), len(p.rb), steps)
	}
	for i := range p.ra {
		if p.ra[i].Loss != p.rb[i].Loss {
			t.Fatalf("step %d: loss %g vs %g after resume", i+1, p.ra[i].Loss, p.rb[i].Loss)
		}
		for _, k := range want(i + 1) {
			v, ok := p.ra[i].Terms[k]
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) || p.rb[i].Terms[k] != v {
				t.Fatalf("step %d: term %s = %g (present %v), %g after resume", i+1, k, v, ok, p.rb[i].Terms[k])
			}
		}
	}
	scopes := map[string]int{}
	for name, x := range p.ta {
		y, ok := p.tb[name]
		if !ok || !slices.Equal(tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](y)) {
			t.Errorf("tensor %s differs after resume", name)
		}
		scopes[strings.SplitN(name, "/", 2)[0]]++
	}
	return scopes
}

// movedFromTeacher counts the tensors under each prefix of the final checkpoint that differ from
// the fixture teacher's EMA weights of the same path.
func (p runPair) movedFromTeacher(t *testing.T, prefixes ...string) map[string]int {
	t.Helper()
	_, teach, _, err := checkpoints.LoadLatest(fixture.teacher.Dir)
	if err != nil {
		t.Fatal(err)
	}
	moved := map[string]int{}
	for name, x := range p.ta {
		for _, pre := range prefixes {
			if rest, ok := strings.CutPrefix(name, pre); ok && !slices.Equal(tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](teach["ema/"+rest])) {
				moved[pre]++
			}
		}
	}
	return moved
}

// TestStudentInitFrom: with trainer.init_from a distillation run's student starts from that run's
// EMA weights (quality-tuning a distilled student), not from the teacher; the teacher is still the
// teacher.
func TestStudentInitFrom(t *testing.T) {
	cfg, lc := testLADD()
	src := tinyJob(t.TempDir(), 3)
	src.Distilled = true
	if _, err := trainer.Train(context.Background(), backendT(t), src, trainer.Options{Out: io.Discard, Method: NewLADD(cfg, lc, fixture.teacher)}); err != nil {
		t.Fatal(err)
	}
	_, srcTs, _, err := checkpoints.LoadLatest(src.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	job := tinyJob(t.TempDir(), 3)
	job.Trainer.InitFrom = string(src.RunDir)
	_, store := newTestLADD(t, cfg, lc, job)
	student, teacher := snapshot(t, store, trainer.ModelScope), snapshot(t, store, TeacherScope)
	differs := 0
	for path, v := range student {
		rest := strings.TrimPrefix(path, "/model/")
		if !slices.Equal(v, tensors.MustCopyFlatData[float32](srcTs["ema/"+rest])) {
			t.Fatalf("student %s is not the init run's EMA weight", rest)
		}
		if !slices.Equal(v, teacher["/teacher/"+rest]) {
			differs++
		}
	}
	if differs == 0 {
		t.Fatal("the student equals the teacher: init_from was ignored")
	}
}
