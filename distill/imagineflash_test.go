package distill

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

func testIF() (Config, IFConfig, LADDConfig) {
	cfg, lc := testLADD()
	cfg.StudentSteps = 3
	fc := DefaultIFConfig()
	fc.StepCounts = []int{1, 2, 3}
	fc.TeacherSteps = 2
	return cfg, fc, lc
}

// newTestIF builds a fresh Imagine Flash method on a new store and backend (its executors must share it).
func newTestIF(t *testing.T, cfg Config, fc IFConfig, lc LADDConfig, job trainer.Job) (*ImagineFlash, *model.Store, compute.Backend) {
	t.Helper()
	store, backend := model.NewStore(), backendT(t)
	m, err := NewImagineFlash(cfg, fc, lc, fixture.teacher)(backend, store, job, false)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*ImagineFlash), store, backend
}

// ifInputs are hand-set step inputs: every example on the schedule times (padded to kMax) at step
// k, with data x0 and noise x_T from b.
func ifInputs(f *ImagineFlash, b *trainer.Batch, x0 []float32, times []float64, k int, nc float32) []*tensors.Tensor {
	in := f.inputs(b, rand.New(rand.NewPCG(9, 9)))
	ts := make([]float32, b.B*f.kMax)
	ks, tK, ncs := make([]int32, b.B), make([]float32, b.B), make([]float32, b.B)
	for i := range b.B {
		for j := range f.kMax {
			ts[i*f.kMax+j] = float32(times[min(j, len(times)-1)])
		}
		ks[i], tK[i], ncs[i] = int32(k), float32(times[k]), nc
	}
	in[0] = tensors.FromFlatDataAndDimensions(x0, b.B, b.H, b.W, b.C)
	in[2] = tensors.FromFlatDataAndDimensions(ts, b.B, f.kMax)
	in[3] = tensors.FromFlatDataAndDimensions(ks, b.B)
	in[4] = tensors.FromFlatDataAndDimensions(tK, b.B)
	in[6] = tensors.FromFlatDataAndDimensions(ncs, b.B)
	return in
}

// inputExec returns an executor of the student's input at its step k (studentInput) from the
// step inputs.
func inputExec(t *testing.T, f *ImagineFlash, store *model.Store, backend compute.Backend) *model.Exec {
	t.Helper()
	e, err := model.NewExec(backend, store, func(root *model.Scope, in []*Node) []*Node {
		root.SetTraining(in[0].Graph(), true)
		return []*Node{f.studentInput(newScopes(root), in[0], in[1], in[2], in[3], in[4], in[6], in[7], in[11])}
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// stepExec returns an executor of one student path step (x, t, s, cond, nc [B]) → x_s.
func stepExec(t *testing.T, f *ImagineFlash, store *model.Store, backend compute.Backend) *model.Exec {
	t.Helper()
	e, err := model.NewExec(backend, store, func(root *model.Scope, in []*Node) []*Node {
		root.SetTraining(in[0].Graph(), true)
		return []*Node{f.pathStep(newScopes(root), in[0], in[1], in[2], in[3], ExpandAxes(in[4], 1, 2, 3), nil)}
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func run1(t *testing.T, e *model.Exec, in ...*tensors.Tensor) []float32 {
	t.Helper()
	args := make([]any, len(in))
	for i, x := range in {
		args[i] = x
	}
	out, err := e.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestBackwardInputIsTheStudentsOwnIterate: in backward mode the student's input at step k does not
// depend on the data x0 at all (two different x0 give bit-identical inputs), equals x_T at k = 0 and
// the student's own DDIM iterate at k = 1, 2; in forward mode it does depend on x0.
func TestBackwardInputIsTheStudentsOwnIterate(t *testing.T) {
	cfg, fc, lc := testIF()
	job := tinyJob(t.TempDir(), 5)
	f, store, be := newTestIF(t, cfg, fc, lc, job)
	rng := rand.New(rand.NewPCG(5, 6))
	b := fakeBatch(rng, 4)
	other := make([]float32, len(b.X0))
	for i := range other {
		other[i] = float32(rng.Float64()*2 - 1)
	}
	times := []float64{1, 2.0 / 3, 1.0 / 3}
	ex, step := inputExec(t, f, store, be), stepExec(t, f, store, be)
	tvec := func(v float64) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(slices.Repeat([]float32{float32(v)}, b.B), b.B)
	}
	cond := tensors.FromFlatDataAndDimensions(b.Cond, b.B)
	zeros := tvec(0)
	x := b.Eps
	for k := range 3 {
		a := run1(t, ex, ifInputs(f, b, b.X0, times, k, 0)...)
		c := run1(t, ex, ifInputs(f, b, other, times, k, 0)...)
		if !slices.Equal(a, c) {
			t.Fatalf("k=%d: the backward input depends on the data x0", k)
		}
		if d := maxAbsDiff(a, x); d > 1e-5 {
			t.Fatalf("k=%d: backward input differs from the student's own iterate by %g", k, d)
		}
		if k < 2 {
			x = run1(t, step, tensors.FromFlatDataAndDimensions(x, b.B, b.H, b.W, b.C), tvec(times[k]), tvec(times[k+1]), cond, zeros)
		}
	}
	if d := maxAbsDiff(b.Eps, x); !(d > 0.1) {
		t.Fatalf("the student's two steps moved x_T by only %g", d)
	}
	fwd := fc
	fwd.Mode = "forward"
	g, gs, gb := newTestIF(t, cfg, fwd, lc, job)
	eg := inputExec(t, g, gs, gb)
	if a, c := run1(t, eg, ifInputs(g, b, b.X0, times, 1, 0)...), run1(t, eg, ifInputs(g, b, other, times, 1, 0)...); slices.Equal(a, c) {
		t.Fatal("the forward baseline's input ignores x0")
	}
}

// TestNoiseCorrectionOnlyFirstStep: with nc = 1 the first path step uses ε̂ = x_T, so the iterate at
// k = 1 moves by exactly σ(t_1)·(x_T − ε̂(x_T)); the second step is the uncorrected step of that
// iterate.
func TestNoiseCorrectionOnlyFirstStep(t *testing.T) {
	cfg, fc, lc := testIF()
	job := tinyJob(t.TempDir(), 5)
	f, store, be := newTestIF(t, cfg, fc, lc, job)
	b := fakeBatch(rand.New(rand.NewPCG(7, 8)), 4)
	times := []float64{0.9, 0.6, 0.3} // below t_max, where the v-model's ε̂ differs from x_T
	ex, step := inputExec(t, f, store, be), stepExec(t, f, store, be)
	tvec := func(v float64) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(slices.Repeat([]float32{float32(v)}, b.B), b.B)
	}
	cond := tensors.FromFlatDataAndDimensions(b.Cond, b.B)
	x1off := run1(t, ex, ifInputs(f, b, b.X0, times, 1, 0)...)
	x1on := run1(t, ex, ifInputs(f, b, b.X0, times, 1, 1)...)
	// ε̂(x_T) of the first step, with clipping, from the uncorrected iterate: x1off = α1·x̂0 + σ1·ε̂.
	e, err := model.NewExec(be, store, func(root *model.Scope, x, tt, c *Node) *Node {
		root.SetTraining(x.Graph(), true)
		x0hat, eps := f.student.Denoise(newScopes(root).get(trainer.ModelScope), x, tt, c)
		_, eps = sampling.ClipAndCorrect(f.student.Schedule, x, x0hat, eps, tt, ScalarZero(x.Graph(), x.DType()), true)
		return eps
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C), tvec(times[0]), cond)
	if err != nil {
		t.Fatal(err)
	}
	epsHat := tensors.MustCopyFlatData[float32](out[0])
	_, sigma1 := f.student.Schedule.AlphaSigma(times[1])
	worst, moved := 0.0, 0.0
	for i := range x1on {
		want := float64(x1off[i]) + sigma1*float64(b.Eps[i]-epsHat[i])
		worst = max(worst, math.Abs(float64(x1on[i])-want))
		moved = max(moved, math.Abs(float64(x1on[i]-x1off[i])))
	}
	if worst > 1e-4 || !(moved > 1e-3) {
		t.Fatalf("first step: corrected iterate off by %g from x1 + σ1(x_T − ε̂); correction moved it by %g", worst, moved)
	}
	x2on := run1(t, ex, ifInputs(f, b, b.X0, times, 2, 1)...)
	want := run1(t, step, tensors.FromFlatDataAndDimensions(x1on, b.B, b.H, b.W, b.C), tvec(times[1]), tvec(times[2]), cond, tvec(0))
	if d := maxAbsDiff(x2on, want); d > 1e-5 {
		t.Fatalf("second step: differs from the uncorrected step of the corrected iterate by %g", d)
	}
}

// TestShiftEndpoints: power shift(0) = shift_min·t_max and shift(t_max) = shift_max·t_max; snr
// shift(0) = 0, shift(t_max) = t_max, shift(t_max/2) = s/(1+s)·t_max; both increase.
func TestShiftEndpoints(t *testing.T) {
	fc := DefaultIFConfig()
	fc.ShiftMin, fc.ShiftMax, fc.ShiftPower = 0.2, 0.9, 2
	for _, tMax := range []float64{1, 0.999} {
		if v := fc.ShiftTime(0, tMax); math.Abs(v-0.2*tMax) > 1e-12 {
			t.Errorf("power shift(0) = %g, want %g", v, 0.2*tMax)
		}
		if v := fc.ShiftTime(tMax, tMax); math.Abs(v-0.9*tMax) > 1e-12 {
			t.Errorf("power shift(t_max) = %g, want %g", v, 0.9*tMax)
		}
		if v := fc.ShiftTime(tMax/2, tMax); math.Abs(v-(0.2+0.7*0.25)*tMax) > 1e-12 {
			t.Errorf("power shift(t_max/2) = %g", v)
		}
	}
	sn := fc
	sn.Shift, sn.ShiftFactor = "snr", 3
	if a, b, c := sn.ShiftTime(0, 1), sn.ShiftTime(1, 1), sn.ShiftTime(0.5, 1); a != 0 || math.Abs(b-1) > 1e-12 || math.Abs(c-0.75) > 1e-12 {
		t.Errorf("snr shift(0, 1, 0.5) = %g, %g, %g; want 0, 1, 0.75", a, b, c)
	}
	for _, c := range []IFConfig{fc, sn} {
		prev := -1.0
		for i := range 101 {
			v := c.ShiftTime(float64(i)/100, 1)
			if v <= prev && !(c.Shift == "power" && c.ShiftMin == c.ShiftMax) {
				t.Fatalf("%s shift not increasing at t=%g", c.Shift, float64(i)/100)
			}
			prev = v
		}
	}
}

// TestSchedules: step counts give trailing schedules, and K' = student_steps takes student_times.
func TestSchedules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StudentSteps, cfg.StudentTimes = 2, []float64{1, 0.4}
	fc := DefaultIFConfig()
	fc.StepCounts = []int{1, 2, 3}
	got := fc.Schedules(cfg, 1)
	want := [][]float64{{1}, {1, 0.4}, {1, 2.0 / 3, 1.0 / 3}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("schedules %v, want %v", got, want)
		}
	}
	fc.StepCounts = nil
	if got := fc.Schedules(cfg, 1); len(got) != 1 || !slices.Equal(got[0], []float64{1, 0.4}) {
		t.Fatalf("no step_counts: %v", got)
	}
}

// TestImagineFlashTrainsStudentOnly: student updates (with the adversarial term on, heads too)
// change /model and /disc, never the teacher; every per-step term is logged and finite; the run
// resumes exactly.
func TestImagineFlashTrainsStudentOnly(t *testing.T) {
	cfg, fc, lc := testIF()
	fc.AdvWeight = 0.1
	fc.Distance = "pseudo_huber"
	p := straightAndResumed(t, func(dir string) trainer.Job { return tinyJob(dir, 4) },
		func() trainer.MethodFactory { return NewImagineFlash(cfg, fc, lc, fixture.teacher) }, 2)
	p.checkExact(t, 4, func(int) []string {
		return []string{"srl", "srl_k1", "srl_k2", "srl_k3", "g_adv", "d_loss", "d_real", "d_fake"}
	})
	if moved := p.movedFromTeacher(t, "teacher/", "model/"); moved["teacher/"] != 0 || moved["model/"] == 0 {
		t.Fatalf("tensors moved from the teacher's weights: %v (want teacher 0, student > 0)", moved)
	}
}

// TestShiftedReconstructionFalls: on a fixed batch, 40 student updates lower the shifted
// reconstruction loss of the backward path.
func TestShiftedReconstructionFalls(t *testing.T) {
	cfg, fc, lc := testIF()
	job := tinyJob(t.TempDir(), 400) // a long cosine: the learning rate stays near its peak
	job.Trainer.LR = 3e-3
	f, _, _ := newTestIF(t, cfg, fc, lc, job)
	rng := rand.New(rand.NewPCG(11, 12))
	b := fakeBatch(rng, 8)
	var first, last float64
	for i := range 40 {
		g, err := f.gStep.RunInputs(i, f.inputs(b, rand.New(rand.NewPCG(1, 1)))...)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = g.Terms["srl"]
		}
		last = g.Terms["srl"]
	}
	t.Logf("srl %.5f -> %.5f", first, last)
	if !(last < 0.7*first) {
		t.Fatalf("shifted reconstruction loss %g -> %g, want a fall of at least 30%%", first, last)
	}
}

// TestRenoisePathUsesFreshNoise: with path_sampler renoise the input at k = 1 is α(t_1)·x̂0 +
// σ(t_1)·z_0 (the student's own x̂0 from x_T, the step's fresh noise), still independent of x0.
func TestRenoisePathUsesFreshNoise(t *testing.T) {
	cfg, fc, lc := testIF()
	fc.PathSampler = "renoise"
	f, store, be := newTestIF(t, cfg, fc, lc, tinyJob(t.TempDir(), 5))
	b := fakeBatch(rand.New(rand.NewPCG(9, 10)), 4)
	other := make([]float32, len(b.X0))
	times := []float64{1, 2.0 / 3, 1.0 / 3}
	in := ifInputs(f, b, b.X0, times, 1, 0)
	ex := inputExec(t, f, store, be)
	got := run1(t, ex, in...)
	if !slices.Equal(got, run1(t, ex, ifInputs(f, b, other, times, 1, 0)...)) {
		t.Fatal("the renoise path's input depends on x0")
	}
	e, err := model.NewExec(be, store, func(root *model.Scope, x, tt, c *Node) *Node {
		root.SetTraining(x.Graph(), true)
		x0hat, _ := f.student.Denoise(newScopes(root).get(trainer.ModelScope), x, tt, c)
		return ClipScalar(x0hat, -1, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	tvec := tensors.FromFlatDataAndDimensions(slices.Repeat([]float32{1}, b.B), b.B)
	x0hat := run1(t, e, tensors.FromFlatDataAndDimensions(b.Eps, b.B, b.H, b.W, b.C), tvec, tensors.FromFlatDataAndDimensions(b.Cond, b.B))
	z := tensors.MustCopyFlatData[float32](in[11])
	alpha, sigma := f.student.Schedule.AlphaSigma(times[1])
	for i := range got {
		if want := alpha*float64(x0hat[i]) + sigma*float64(z[i]); math.Abs(float64(got[i])-want) > 1e-5 {
			t.Fatalf("value %d: %g, want α·x̂0 + σ·z = %g", i, got[i], want)
		}
	}
}
