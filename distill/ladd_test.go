package distill

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

var fixture struct {
	dir     string
	mnist   string
	teacher Teacher
}

// TestMain imports the MNIST test split and trains a tiny teacher for 10 steps, once.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fewstep-distill-test-")
	if err != nil {
		panic(err)
	}
	fixture.dir = dir
	code := func() int {
		src, err := data.FindGoMNIST()
		if err != nil {
			panic(err)
		}
		fixture.mnist = filepath.Join(dir, "mnist-test.parquet")
		if _, err := data.ImportMNIST(src, "test", fixture.mnist); err != nil {
			panic(err)
		}
		job := tinyJob(filepath.Join(dir, "teacher"), 10)
		backend, err := compute.NewWithConfig("go")
		if err != nil {
			panic(err)
		}
		if _, err := trainer.Train(context.Background(), backend, job, trainer.Options{Out: io.Discard}); err != nil {
			panic(err)
		}
		fixture.teacher = Teacher{Dir: job.RunDir, Model: job.Model, Diffusion: job.Diffusion}
		return m.Run()
	}()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// tinyJob is a small class-conditional U-Net on the MNIST test split.
func tinyJob(dir string, steps int) trainer.Job {
	dc := data.DefaultConfig()
	dc.Train = fixture.mnist
	mc := models.DefaultConfig()
	mc.PatchSize, mc.BaseChannels, mc.ChannelMult, mc.AttentionResolutions = 2, 8, []int{1, 2}, []int{8}
	mc.AttentionHeads, mc.Groups, mc.TimeFeatures, mc.EmbedDim = 2, 4, 16, 32
	tc := trainer.DefaultConfig()
	tc.Steps, tc.BatchSize, tc.LR, tc.WarmupSteps, tc.LogEvery, tc.CheckpointEvery, tc.SampleEvery = steps, 8, 1e-3, 2, 1, 1000, 0
	sc := sampling.DefaultConfig()
	sc.Steps, sc.PerClass = 2, 1
	return trainer.Job{RunDir: checkpoints.RunDir(dir), Seed: 3, Data: dc, Model: mc, Diffusion: models.DefaultDiffusionConfig(),
		Trainer: tc, Sample: sc, ConfigYAML: []byte("# test\n")}
}

func testLADD() (Config, LADDConfig) {
	cfg := DefaultConfig()
	cfg.Teacher = string(fixture.teacher.Dir)
	cfg.StudentSteps = 2
	lc := DefaultLADDConfig()
	lc.Taps = []string{"down1", "mid", "up0"}
	lc.HeadChannels = 8
	lc.DistillWeight = 0.5
	lc.DistillSteps = 2
	return cfg, lc
}

// newTestLADD builds a fresh LADD method (student initialized from the fixture teacher) on a new store.
func newTestLADD(t *testing.T, cfg Config, lc LADDConfig, job trainer.Job) (*LADD, *model.Store) {
	t.Helper()
	return newTestLADDOn(t, backendT(t), cfg, lc, job)
}

// newTestLADDOn is newTestLADD on a given backend (for tests that run their own graphs on its store).
func newTestLADDOn(t *testing.T, backend compute.Backend, cfg Config, lc LADDConfig, job trainer.Job) (*LADD, *model.Store) {
	t.Helper()
	store := model.NewStore()
	m, err := NewLADD(cfg, lc, fixture.teacher)(backend, store, job, false)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*LADD), store
}

func backendT(t *testing.T) compute.Backend {
	t.Helper()
	b, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot copies every variable under /scope.
func snapshot(t *testing.T, store *model.Store, scope string) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+scope+"/") {
			out[v.Path()] = tensors.MustCopyFlatData[float32](v.MustValue())
		}
	}
	return out
}

func changed(a, b map[string][]float32) (n int) {
	for k, va := range a {
		if !slices.Equal(va, b[k]) {
			n++
		}
	}
	return n
}

// TestLADDStepsTouchOnlyTheirNetworks: a heads update changes only /disc, a student update only
// /model (and its EMA and moments); the frozen teacher is bit-identical throughout.
func TestLADDStepsTouchOnlyTheirNetworks(t *testing.T) {
	cfg, lc := testLADD()
	job := tinyJob(t.TempDir(), 5)
	l, store := newTestLADD(t, cfg, lc, job)
	teacher0, student0 := snapshot(t, store, TeacherScope), snapshot(t, store, trainer.ModelScope)
	if len(teacher0) == 0 || len(teacher0) != len(student0) {
		t.Fatalf("teacher %d tensors, student %d", len(teacher0), len(student0))
	}
	for k, v := range teacher0 { // the student starts as the teacher
		if !slices.Equal(v, student0["/model"+strings.TrimPrefix(k, "/teacher")]) {
			t.Fatalf("student %s does not start from the teacher", k)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b := fakeBatch(rng, 8)
	in := l.inputs(0, b, rng)
	d, err := l.dStep.RunInputs(0, in...)
	if err != nil || !d.Applied {
		t.Fatalf("heads step: %v %+v", err, d)
	}
	heads1 := snapshot(t, store, trainer.DiscScope)
	if len(heads1) == 0 {
		t.Fatal("no heads were created")
	}
	if n := changed(student0, snapshot(t, store, trainer.ModelScope)); n != 0 {
		t.Errorf("the heads' step changed %d student tensors", n)
	}
	g, err := l.gStep.RunInputs(0, in...)
	if err != nil || !g.Applied {
		t.Fatalf("student step: %v %+v", err, g)
	}
	if n := changed(heads1, snapshot(t, store, trainer.DiscScope)); n != 0 {
		t.Errorf("the student's step changed %d head tensors", n)
	}
	if n := changed(student0, snapshot(t, store, trainer.ModelScope)); n == 0 {
		t.Error("the student's step changed no student tensor")
	}
	if n := changed(teacher0, snapshot(t, store, TeacherScope)); n != 0 {
		t.Errorf("the teacher changed: %d tensors", n)
	}
	for _, k := range []string{"g_adv", "g_distill"} {
		if _, ok := g.Terms[k]; !ok {
			t.Errorf("student terms %v lack %s", g.Terms, k)
		}
	}
	for _, k := range []string{"d_loss", "d_real", "d_fake"} {
		if _, ok := d.Terms[k]; !ok {
			t.Errorf("heads terms %v lack %s", d.Terms, k)
		}
	}
}

// fakeBatch is a trainer.Batch of random images in [-1, 1] with labels.
// stepLosses runs step for i = 0 … n−1 and returns the losses.
func stepLosses(t *testing.T, n int, step func(i int) (trainer.StepResult, error)) []float64 {
	t.Helper()
	out := make([]float64, n)
	for i := range n {
		g, err := step(i)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = g.Loss
	}
	return out
}

func fakeBatch(rng *rand.Rand, bsz int) *trainer.Batch {
	n := bsz * 32 * 32
	b := &trainer.Batch{X0: make([]float32, n), Eps: make([]float32, n), T: make([]float32, bsz), Cond: make([]int32, bsz), B: bsz, H: 32, W: 32, C: 1}
	for i := range b.X0 {
		b.X0[i] = float32(rng.Float64()*2 - 1)
		b.Eps[i] = float32(rng.NormFloat64())
	}
	for i := range b.Cond {
		b.Cond[i] = int32(i % 10)
	}
	return b
}

// normals is n draws of N(0, 1) as float32.
func normals(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestGeneratorGradientReachesStudentOutput: the student's adversarial loss has a non-zero
// gradient with respect to x̂0, through the frozen teacher's features and the heads.
func TestGeneratorGradientReachesStudentOutput(t *testing.T) {
	cfg, lc := testLADD()
	job := tinyJob(t.TempDir(), 5)
	l, store := newTestLADD(t, cfg, lc, job)
	rng := rand.New(rand.NewPCG(3, 4))
	b := fakeBatch(rng, 4)
	exec, err := model.NewExec(backendT(t), store, func(root *model.Scope, x0hat, tHat, eps2, cond *Node) *Node {
		root.SetTraining(x0hat.Graph(), true)
		var adv *Node
		for _, lg := range l.logits(newScopes(root), x0hat, tHat, eps2, cond) {
			adv = addOrSet(adv, ReduceAllMean(lg))
		}
		return ReduceAllSum(Square(Gradient(adv, x0hat)[0]))
	})
	if err != nil {
		t.Fatal(err)
	}
	tHat := tensors.FromFlatDataAndDimensions([]float32{0.3, 0.5, 0.7, 0.9}, 4)
	out, err := exec.Call1(tensors.FromFlatDataAndDimensions(b.X0, 4, 32, 32, 1), tHat,
		tensors.FromFlatDataAndDimensions(b.Eps, 4, 32, 32, 1), tensors.FromFlatDataAndDimensions(b.Cond, 4))
	if err != nil {
		t.Fatal(err)
	}
	if g := tensors.ToScalar[float32](out); !(g > 0) || math.IsInf(float64(g), 0) {
		t.Fatalf("‖∂L_adv/∂x̂0‖² = %g, want finite and > 0", g)
	}
}

// TestLogitNormalQuantiles: the empirical quantiles of 200,000 draws match sigmoid(m + s·Φ⁻¹(q)).
func TestLogitNormalQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, ms := range [][2]float64{{0, 1}, {1, 1}, {-0.5, 0.6}} {
		xs := make([]float64, 200000)
		for i := range xs {
			xs[i] = SampleLogitNormal(rng, ms[0], ms[1], 1)
		}
		sort.Float64s(xs)
		for _, q := range []float64{0.1, 0.25, 0.5, 0.75, 0.9} {
			want := 1 / (1 + math.Exp(-(ms[0] + ms[1]*math.Sqrt2*math.Erfinv(2*q-1))))
			if got := xs[int(q*float64(len(xs)))]; math.Abs(got-want) > 0.004 {
				t.Errorf("m=%g s=%g: quantile %g = %.4f, want %.4f", ms[0], ms[1], q, got, want)
			}
		}
	}
}

// TestLADDResumeIsExact: 6 LADD steps straight vs 3, stop, resume 3: identical losses and terms,
// and bit-identical teacher, student, EMA, heads and all AdamW moments.
func TestLADDResumeIsExact(t *testing.T) {
	cfg, lc := testLADD()
	p := straightAndResumed(t, func(dir string) trainer.Job { return tinyJob(dir, 6) },
		func() trainer.MethodFactory { return NewLADD(cfg, lc, fixture.teacher) }, 3)
	scopes := p.checkExact(t, 6, func(int) []string { return []string{"g_adv", "g_distill", "d_loss", "d_real", "d_fake"} })
	for _, s := range []string{"teacher", "model", "ema", "disc", "opt"} {
		if scopes[s] == 0 {
			t.Errorf("checkpoint lacks /%s tensors: %v", s, scopes)
		}
	}
	// The teacher in the final checkpoint is still the teacher's EMA weights.
	if moved := p.movedFromTeacher(t, "teacher/"); moved["teacher/"] != 0 {
		t.Errorf("%d teacher tensors changed during distillation", moved["teacher/"])
	}
}

// TestHeadsLearnToDiscriminate (part 12's diagnosis as a test): with the student frozen, real
// digits against the student's one-step outputs from pure noise (blurry class means), t̂ uniform
// on [0.02, 0.3], a new batch every other update: 60 head updates bring the hinge loss well below
// its chance level of 2 per head, and on 16 held-out digits at t̂ = 0.05 and 0.2 the heads call
// at least 80% of real and fake images right in each bucket.
func TestHeadsLearnToDiscriminate(t *testing.T) {
	for _, tc := range []struct {
		output string
		depth  int
	}{{"pooled", 0}, {"patch", 0}, {"patch", 2}} {
		t.Run(fmt.Sprintf("%s-depth%d", tc.output, tc.depth), func(t *testing.T) {
			cfg, lc := testLADD()
			cfg.StudentTimes, cfg.StudentSteps = []float64{1}, 1
			lc.HeadLR, lc.HeadOutput, lc.HeadDepth = 2e-3, tc.output, tc.depth
			lc.TDist, lc.TRange = "uniform", []float64{0.02, 0.3} // the low-noise heads, as the diagnosis trains them
			job := tinyJob(t.TempDir(), 60)
			l, _ := newTestLADD(t, cfg, lc, job)
			st, err := data.Open(job.Data, 16, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			db := data.NewBatch(st.Info(), job.Data, 16)
			if err := st.Next(db); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, 8))
			b := fakeBatch(rng, 16)
			copy(b.X0, db.X)
			copy(b.Cond, db.Labels)
			var first, last, acc float64
			for i := range 60 {
				if i > 0 && i%2 == 0 { // a new batch every other step: what the heads learn must generalise
					if err := st.Next(db); err != nil {
						t.Fatal(err)
					}
					copy(b.X0, db.X)
					copy(b.Cond, db.Labels)
				}
				d, err := l.dStep.RunInputs(i, l.inputs(i, b, rng)...)
				if err != nil || !d.Applied {
					t.Fatalf("heads step %d: %v %+v", i, err, d)
				}
				if i == 0 {
					first = d.Terms["d_loss"]
				}
				last, acc = d.Terms["d_loss"], (d.Terms["d_acc_real"]+d.Terms["d_acc_fake"])/2
			}
			chance := 2 * float64(len(lc.Taps))
			t.Logf("hinge loss %.3f -> %.3f (chance %.0f), accuracy %.3f", first, last, chance, acc)
			if !(last < 0.6*chance) {
				t.Errorf("heads did not learn: hinge loss %.3f -> %.3f, chance level %.0f", first, last, chance)
			}
			if !(acc > 0.8 && acc <= 1) {
				t.Errorf("heads' accuracy on real vs fake %.3f, want > 0.8 after learning", acc)
			}
			// Held out: the next 16 real images, not trained on (and the student's samples of their classes) at
			// fixed low t̂, 0.05 (bucket t0) and 0.2 (t1); the terms are measured before the update.
			if err := st.Next(db); err != nil {
				t.Fatal(err)
			}
			copy(b.X0, db.X)
			copy(b.Cond, db.Labels)
			in := l.inputs(60, b, rng)
			th := make([]float32, 16)
			for i := range th {
				th[i] = []float32{0.05, 0.2}[i%2]
			}
			in[4] = tensors.FromFlatDataAndDimensions(th, 16)
			d, err := l.dStep.RunInputs(60, in...)
			if err != nil || !d.Applied {
				t.Fatalf("held-out step: %v %+v", err, d)
			}
			for _, k := range []string{"t0", "t1"} {
				held := (d.Terms["d_acc_real/"+k] + d.Terms["d_acc_fake/"+k]) / 2
				t.Logf("held-out accuracy at %s: %.3f, gap %+.3f", k, held, d.Terms["d_gap/"+k])
				if !(held >= 0.8) {
					t.Errorf("held-out accuracy in bucket %s %.3f, want >= 0.8", k, held)
				}
			}
		})
	}
}

// TestTeacherSolveLatentUnclipped: for pixel data the teacher's solve is its last x̂0 (of steps
// that clip) clipped to [-1, 1]; for latent data (unbounded) it is the last x̂0 of unclipped steps,
// unchanged. The input is 5× the noise, so the x̂0 leaves [-1, 1].
func TestTeacherSolveLatentUnclipped(t *testing.T) {
	cfg, lc := testLADD()
	job := tinyJob(t.TempDir(), 5)
	l, store := newTestLADD(t, cfg, lc, job)
	b := fakeBatch(rand.New(rand.NewPCG(7, 8)), 2)
	x := make([]float32, len(b.Eps))
	for i, v := range b.Eps {
		x[i] = 5 * v
	}
	exec, err := model.NewExec(backendT(t), store, func(root *model.Scope, x, ts, cond *Node) []*Node {
		sc := newScopes(root)
		_, rawPixel := teacherSteps(l.teacher, sc, x, ts, nil, cond, 2, 2, nil, l.classes, false)
		_, raw := teacherSteps(l.teacher, sc, x, ts, nil, cond, 2, 2, nil, l.classes, true)
		return []*Node{raw, teacherSolve(l.teacher, sc, x, ts, cond, 2, 2, nil, l.classes, false),
			teacherSolve(l.teacher, sc, x, ts, cond, 2, 2, nil, l.classes, true), rawPixel}
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Call(tensors.FromFlatDataAndDimensions(x, 2, 32, 32, 1),
		tensors.FromFlatDataAndDimensions([]float32{0.5, 0.9}, 2), tensors.FromFlatDataAndDimensions(b.Cond, 2))
	if err != nil {
		t.Fatal(err)
	}
	raw, pixel, latent := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1]), tensors.MustCopyFlatData[float32](outs[2])
	rawPixel := tensors.MustCopyFlatData[float32](outs[3])
	beyond := 0
	for i, v := range raw {
		if math.Abs(float64(v)) > 1 {
			beyond++
		}
		if latent[i] != v {
			t.Fatalf("latent solve value %d = %g, x̂0 %g", i, latent[i], v)
		}
		if want := min(max(rawPixel[i], -1), 1); pixel[i] != want {
			t.Fatalf("pixel solve value %d = %g, want clipped x̂0 %g", i, pixel[i], want)
		}
	}
	if beyond == 0 {
		t.Fatal("no x̂0 value beyond [-1, 1]: the test shows nothing")
	}
}

// TestTeacherSolveGuidanceInterval: the teacher's solve guides exactly the steps whose own time
// lies in the interval, per example. With t = 0.5 and 0.9 and two steps (times 0.5, 0.25 and
// 0.9, 0.45), the interval [0.4, 1] guides example 1 at both steps (= full guidance) and
// example 0 only at its first (≠ full guidance, ≠ none); an interval outside every step equals
// the unguided solve.
func TestTeacherSolveGuidanceInterval(t *testing.T) {
	cfg, lc := testLADD()
	job := tinyJob(t.TempDir(), 5)
	l, store := newTestLADD(t, cfg, lc, job)
	b := fakeBatch(rand.New(rand.NewPCG(5, 6)), 2)
	solve := func(w float64, interval []float64) []float32 {
		exec, err := model.NewExec(backendT(t), store, func(root *model.Scope, x, ts, cond *Node) *Node {
			return teacherSolve(l.teacher, newScopes(root), x, ts, cond, 2, w, interval, l.classes, l.latent)
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Call1(tensors.FromFlatDataAndDimensions(b.Eps, 2, 32, 32, 1),
			tensors.FromFlatDataAndDimensions([]float32{0.5, 0.9}, 2), tensors.FromFlatDataAndDimensions(b.Cond, 2))
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](out)
	}
	maxDiff := func(a, b []float32, ex int) float64 {
		n := len(a) / 2
		d := 0.0
		for i := ex * n; i < (ex+1)*n; i++ {
			d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		}
		return d
	}
	none, full := solve(1, nil), solve(3, nil)
	everywhere, outside, upper := solve(3, []float64{0, 1}), solve(3, []float64{0.95, 1}), solve(3, []float64{0.4, 1})
	for ex := range 2 {
		if d := maxDiff(none, full, ex); d < 1e-4 {
			t.Fatalf("example %d: guidance 3 changes the solve by only %g; the test cannot tell them apart", ex, d)
		}
		if d := maxDiff(everywhere, full, ex); d > 1e-6 {
			t.Errorf("example %d: interval [0, 1] differs from guidance everywhere by %g", ex, d)
		}
		if d := maxDiff(outside, none, ex); d > 1e-5 {
			t.Errorf("example %d: interval [0.95, 1] differs from the unguided solve by %g", ex, d)
		}
	}
	if d := maxDiff(upper, full, 1); d > 1e-6 {
		t.Errorf("example 1 (t 0.9, 0.45): interval [0.4, 1] differs from full guidance by %g", d)
	}
	if maxDiff(upper, full, 0) < 1e-5 || maxDiff(upper, none, 0) < 1e-5 {
		t.Errorf("example 0 (t 0.5, 0.25): interval [0.4, 1] should guide only its first step (vs full %g, vs none %g)",
			maxDiff(upper, full, 0), maxDiff(upper, none, 0))
	}
}

// TestAdversaryNoise: with the defaults, t̂ and the real images' ε' are drawn exactly as in
// part 5 (resumed runs stay exact) and the fakes share them; independent noise and the R1
// perturbation fill their own blocks; uniform t̂ fills ladd.t_range.
func TestAdversaryNoise(t *testing.T) {
	const bsz = 2000
	b := &trainer.Batch{X0: make([]float32, bsz), B: bsz, H: 1, W: 1, C: 1}
	lc := DefaultLADDConfig()
	a := &adversary{lc: lc}
	tHat, eps2 := a.noise(b, rand.New(rand.NewPCG(5, 6)))
	ref := rand.New(rand.NewPCG(5, 6))
	th, e := tensors.MustCopyFlatData[float32](tHat), tensors.MustCopyFlatData[float32](eps2)
	for i := range bsz {
		if want := float32(SampleLogitNormal(ref, lc.TLocation, lc.TScale, 1)); th[i] != want {
			t.Fatalf("t̂[%d] = %g, part-5 stream gives %g", i, th[i], want)
		}
	}
	for i := range bsz {
		if want := float32(ref.NormFloat64()); e[i] != want || e[bsz+i] != want || e[2*bsz+i] != 0 {
			t.Fatalf("ε' blocks at %d: real %g fake %g r1 %g, want %g, %g, 0", i, e[i], e[bsz+i], e[2*bsz+i], want, want)
		}
	}
	lc.SameNoise, lc.R1Weight, lc.TDist, lc.TRange = false, 1, "uniform", []float64{0.2, 0.6}
	a = &adversary{lc: lc}
	tHat, eps2 = a.noise(b, rand.New(rand.NewPCG(5, 6)))
	th, e = tensors.MustCopyFlatData[float32](tHat), tensors.MustCopyFlatData[float32](eps2)
	var mean, same, sq1, sq2 float64
	for i := range bsz {
		if th[i] < 0.2 || th[i] >= 0.6 {
			t.Fatalf("uniform t̂[%d] = %g outside [0.2, 0.6)", i, th[i])
		}
		mean += float64(th[i]) / bsz
		if e[i] == e[bsz+i] {
			same++
		}
		sq1 += float64(e[bsz+i]*e[bsz+i]) / bsz
		sq2 += float64(e[2*bsz+i]*e[2*bsz+i]) / bsz
	}
	// mean of U(0.2, 0.6): 0.4, standard error 0.4/√12/√2000 = 0.0026
	if math.Abs(mean-0.4) > 0.013 {
		t.Errorf("uniform t̂ mean %.4f, want 0.4", mean)
	}
	if same > 0 || math.Abs(sq1-1) > 0.15 || math.Abs(sq2-1) > 0.15 {
		t.Errorf("independent blocks: %v equal values, E[ε'²] fake %.3f, r1 %.3f (want 0, ≈1, ≈1)", same, sq1, sq2)
	}
}

// TestHeadTermsPerBucket: the per-bucket terms count exactly the examples whose t̂ falls in each
// bucket, the overall accuracy is their count-weighted mean, and d_loss = d_hinge + r1_weight·d_r1.
func TestHeadTermsPerBucket(t *testing.T) {
	cfg, lc := testLADD()
	lc.HeadDepth, lc.R1Weight = 1, 0.5
	job := tinyJob(t.TempDir(), 5)
	l, _ := newTestLADD(t, cfg, lc, job)
	rng := rand.New(rand.NewPCG(9, 10))
	b := fakeBatch(rng, 8)
	in := l.inputs(0, b, rng)
	in[4] = tensors.FromFlatDataAndDimensions([]float32{0.05, 0.2, 0.2, 0.4, 0.7, 0.7, 0.7, 0.1}, 8)
	tS := make([]float32, 8)
	wantS := make([]float64, len(l.times))
	for i := range tS {
		k := min(i%3, len(l.times)-1)
		tS[i] = float32(l.times[k])
		wantS[k]++
	}
	in[2] = tensors.FromFlatDataAndDimensions(tS, 8)
	d, err := l.dStep.RunInputs(0, in...)
	if err != nil || !d.Applied {
		t.Fatalf("heads step: %v %+v", err, d)
	}
	want := []float64{1, 3, 1, 3} // 0.1 belongs to [0.1, 0.3)
	var accR, accF float64
	for k, n := range want {
		if got := d.Terms[fmt.Sprintf("d_n/t%d", k)]; got != n {
			t.Errorf("d_n/t%d = %g, want %g", k, got, n)
		}
		accR += n / 8 * d.Terms[fmt.Sprintf("d_acc_real/t%d", k)]
		accF += n / 8 * d.Terms[fmt.Sprintf("d_acc_fake/t%d", k)]
	}
	if math.Abs(accR-d.Terms["d_acc_real"]) > 1e-5 || math.Abs(accF-d.Terms["d_acc_fake"]) > 1e-5 {
		t.Errorf("bucket-weighted accuracy real %.6f fake %.6f, overall %.6f %.6f", accR, accF, d.Terms["d_acc_real"], d.Terms["d_acc_fake"])
	}
	var accS float64
	for k, n := range wantS {
		if got := d.Terms[fmt.Sprintf("d_n/s%d", k)]; got != n {
			t.Errorf("d_n/s%d = %g, want %g", k, got, n)
		}
		accS += n / 8 * d.Terms[fmt.Sprintf("d_acc_fake/s%d", k)]
	}
	if math.Abs(accS-d.Terms["d_acc_fake"]) > 1e-5 {
		t.Errorf("student-timestep-weighted fake accuracy %.6f, overall %.6f", accS, d.Terms["d_acc_fake"])
	}
	if r1 := d.Terms["d_r1"]; !(r1 >= 0) || math.Abs(d.Terms["d_hinge"]+0.5*r1-d.Terms["d_loss"]) > 1e-4*(1+d.Terms["d_loss"]) {
		t.Errorf("d_loss %g, d_hinge %g + 0.5·d_r1 %g", d.Terms["d_loss"], d.Terms["d_hinge"], r1)
	}
	for _, tap := range lc.Taps {
		if _, ok := d.Terms["d_gap/"+tap]; !ok {
			t.Errorf("no d_gap/%s in %v", tap, d.Terms)
		}
	}
}

// TestHeadWarmupAndFrozenStudent: during ladd.head_warmup (no distillation term) and with
// ladd.freeze_student a LADD step trains the heads only; after the warm-up the student trains.
func TestHeadWarmupAndFrozenStudent(t *testing.T) {
	cfg, lc := testLADD()
	lc.DistillWeight, lc.HeadWarmup = 0, 2
	job := tinyJob(t.TempDir(), 5)
	l, store := newTestLADD(t, cfg, lc, job)
	rng := rand.New(rand.NewPCG(11, 12))
	b := fakeBatch(rng, 8)
	student0, heads0 := snapshot(t, store, trainer.ModelScope), snapshot(t, store, trainer.DiscScope)
	for step := range 2 {
		if r, err := l.Step(step, b, rng); err != nil || !r.Applied {
			t.Fatalf("warm-up step %d: %v %+v", step, err, r)
		}
	}
	if n := changed(student0, snapshot(t, store, trainer.ModelScope)); n != 0 {
		t.Errorf("the heads' warm-up changed %d student tensors", n)
	}
	heads1 := snapshot(t, store, trainer.DiscScope)
	if len(heads0) > 0 && changed(heads0, heads1) == 0 || len(heads1) == 0 {
		t.Error("the warm-up did not train the heads")
	}
	if r, err := l.Step(2, b, rng); err != nil || !r.Applied {
		t.Fatalf("step 2: %v %+v", err, r)
	}
	student2 := snapshot(t, store, trainer.ModelScope)
	if n := changed(student0, student2); n == 0 {
		t.Error("after the warm-up the student did not train")
	}
	l.lc.FreezeStudent = true
	if r, err := l.Step(3, b, rng); err != nil || !r.Applied {
		t.Fatalf("frozen step: %v %+v", err, r)
	}
	if n := changed(student2, snapshot(t, store, trainer.ModelScope)); n != 0 {
		t.Errorf("freeze_student: %d student tensors changed", n)
	}
}

// TestFrozenStudentHasEMA: a frozen student's EMA (what sample grids and eval read) exists from
// the start and equals the student, since its own update, which would create it, never runs.
func TestFrozenStudentHasEMA(t *testing.T) {
	cfg, lc := testLADD()
	lc.FreezeStudent = true
	_, store := newTestLADD(t, cfg, lc, tinyJob(t.TempDir(), 5))
	student, ema := snapshot(t, store, trainer.ModelScope), snapshot(t, store, trainer.EMAScope)
	if len(student) == 0 || len(ema) != len(student) {
		t.Fatalf("student %d tensors, EMA %d", len(student), len(ema))
	}
	for k, v := range student {
		if !slices.Equal(v, ema[trainer.EMAPath(k)]) {
			t.Fatalf("EMA of %s differs from the student", k)
		}
	}
}

// TestStudentTWeights: ladd.student_t_weights sets the frequencies of the student's timesteps (a
// zero weight is never drawn), and a list whose length is not distill.student_steps is refused.
func TestStudentTWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := []float64{3, 0, 1, 0}
	counts := make([]float64, 4)
	const n = 40000
	for range n {
		counts[drawIndex(rng, w, 4)]++
	}
	// binomial sd of the frequency at p = 0.75 and n = 40000 is 0.0022
	if counts[1] != 0 || counts[3] != 0 || math.Abs(counts[0]/n-0.75) > 0.011 {
		t.Errorf("counts %v for weights %v", counts, w)
	}
	cfg, lc := testLADD()
	lc.StudentTWeights = make([]float64, cfg.StudentSteps+1)
	lc.StudentTWeights[0] = 1
	job := tinyJob(t.TempDir(), 5)
	_, err := NewLADD(cfg, lc, fixture.teacher)(backendT(t), model.NewStore(), job, false)
	if err == nil || !strings.Contains(err.Error(), "ladd.student_t_weights") {
		t.Errorf("mismatched weights: error %v", err)
	}
	lc.StudentTWeights = []float64{-1}
	if err := lc.Validate(nil); err == nil || !strings.Contains(err.Error(), "ladd.student_t_weights") {
		t.Errorf("negative weight: error %v", err)
	}
}

// TestAdvTMinMasksExamples: with a mask (ladd.adv_t_min) the student's adversarial term sends no
// gradient into the masked-out examples' x̂0 and some into the kept one; an all-ones mask gives
// the unmasked loss.
func TestAdvTMinMasksExamples(t *testing.T) {
	cfg, lc := testLADD()
	job := tinyJob(t.TempDir(), 5)
	l, store := newTestLADD(t, cfg, lc, job)
	rng := rand.New(rand.NewPCG(13, 14))
	b := fakeBatch(rng, 4)
	e := normals(rng, 3*len(b.Eps))
	args := []any{tensors.FromFlatDataAndDimensions(b.X0, 4, 32, 32, 1), tensors.FromFlatDataAndDimensions([]float32{0.1, 0.2, 0.3, 0.4}, 4),
		tensors.FromFlatDataAndDimensions(e, 12, 32, 32, 1), tensors.FromFlatDataAndDimensions(b.Cond, 4)}
	be := backendT(t)
	grads, err := model.NewExec(be, store, func(root *model.Scope, x0hat, tHat, eps2, cond *Node) *Node {
		root.SetTraining(x0hat.Graph(), true)
		mask := Const(x0hat.Graph(), []float32{1, 0, 0, 0})
		g := Gradient(l.adv.genLoss(newScopes(root), x0hat, tHat, eps2, cond, mask), x0hat)[0]
		return ReduceSum(Square(g), 1, 2, 3) // [B]
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := grads.Call1(args...)
	if err != nil {
		t.Fatal(err)
	}
	g := tensors.MustCopyFlatData[float32](out)
	if !(g[0] > 0) || g[1] != 0 || g[2] != 0 || g[3] != 0 {
		t.Errorf("per-example ‖∂L_adv/∂x̂0‖² = %v, want > 0 for the kept example only", g)
	}
	diff, err := model.NewExec(be, store, func(root *model.Scope, x0hat, tHat, eps2, cond *Node) *Node {
		root.SetTraining(x0hat.Graph(), true)
		sc := newScopes(root)
		masked := l.adv.genLoss(sc, x0hat, tHat, eps2, cond, OnesLike(tHat))
		return Sub(masked, l.adv.genLoss(sc, x0hat, tHat, eps2, cond, nil))
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err = diff.Call1(args...); err != nil {
		t.Fatal(err)
	}
	if d := tensors.ToScalar[float32](out); math.Abs(float64(d)) > 1e-5 {
		t.Errorf("all-ones mask differs from no mask by %g", d)
	}
}

// TestLADDAdaptiveWeight: with ladd.adaptive_weight the logged λ is the ratio of the distillation
// and adversarial terms' gradient norms at the student's output conv — recomputed here in a separate
// graph from the same inputs and weights — and the step's loss is adv_weight·λ·g_adv + distill_weight·g_distill.
// Without a distillation term the key is refused by name.
func TestLADDAdaptiveWeight(t *testing.T) {
	cfg, lc := testLADD()
	lc.AdaptiveWeight, lc.AdvWeight = true, 0.3
	job := tinyJob(t.TempDir(), 5)
	backend := backendT(t)
	l, store := newTestLADDOn(t, backend, cfg, lc, job)
	rng := rand.New(rand.NewPCG(4, 5))
	in := l.inputs(0, fakeBatch(rng, 8), rng)
	plain := *l
	plain.lc.AdaptiveWeight = false
	exec := model.MustNewExec(backend, store, func(scope *model.Scope, nodes []*Node) (*Node, *Node) {
		_, terms := plain.studentLoss(scope, nodes)
		w := outputLayer(store, model.JoinPath(scope.Scope(), trainer.ModelScope), nodes[0].Graph())
		n := func(v *Node) *Node { return Sqrt(ReduceAllSum(Square(v))) }
		return n(Gradient(terms["g_distill"], w)[0]), n(Gradient(terms["g_adv"], w)[0])
	})
	args := make([]any, len(in))
	for i, x := range in {
		args[i] = x
	}
	outs := exec.MustCall(args...)
	gD, gA := float64(tensors.ToScalar[float32](outs[0])), float64(tensors.ToScalar[float32](outs[1]))
	if !(gD > 0 && gA > 0) {
		t.Fatalf("gradient norms at the output conv: distill %g, adv %g", gD, gA)
	}
	g, err := l.gStep.RunInputs(0, in...)
	if err != nil {
		t.Fatal(err)
	}
	lambda, ok := g.Terms["lambda"]
	if !ok {
		t.Fatalf("student terms %v lack lambda", g.Terms)
	}
	if want := gD / (gA + 1e-4); math.Abs(lambda-want) > 1e-3*want {
		t.Errorf("lambda %g, want ‖∇dist‖/‖∇adv‖ = %g/%g = %g", lambda, gD, gA, want)
	}
	if want := lc.AdvWeight*lambda*g.Terms["g_adv"] + lc.DistillWeight*g.Terms["g_distill"]; math.Abs(g.Loss-want) > 1e-4*math.Max(1, math.Abs(want)) {
		t.Errorf("loss %g, want adv_weight·λ·g_adv + distill_weight·g_distill = %g", g.Loss, want)
	}
	lc.DistillWeight = 0
	if err := lc.Validate(nil); err == nil || !strings.Contains(err.Error(), "ladd.adaptive_weight") {
		t.Errorf("adaptive_weight without distill_weight: error %v, want one naming ladd.adaptive_weight", err)
	}
}

// TestHeadTMinMasksFakes: with a fake mask (ladd.head_t_min) the heads' loss takes no gradient from
// the masked-out fakes and some from the kept one, the reals all count, and an all-ones mask gives
// the unmasked loss and terms.
func TestHeadTMinMasksFakes(t *testing.T) {
	cfg, lc := testLADD()
	job := tinyJob(t.TempDir(), 5)
	l, store := newTestLADD(t, cfg, lc, job)
	rng := rand.New(rand.NewPCG(15, 16))
	b := fakeBatch(rng, 4)
	fake, e := normals(rng, len(b.X0)), normals(rng, 3*len(b.Eps))
	args := []any{tensors.FromFlatDataAndDimensions(b.X0, 4, 32, 32, 1), tensors.FromFlatDataAndDimensions(fake, 4, 32, 32, 1),
		tensors.FromFlatDataAndDimensions([]float32{0.1, 0.2, 0.3, 0.4}, 4),
		tensors.FromFlatDataAndDimensions(e, 12, 32, 32, 1), tensors.FromFlatDataAndDimensions(b.Cond, 4)}
	be := backendT(t)
	grads, err := model.NewExec(be, store, func(root *model.Scope, real, fake, tHat, eps2, cond *Node) (*Node, *Node) {
		root.SetTraining(real.Graph(), true)
		mask := Const(real.Graph(), []float32{0, 0, 1, 0})
		loss, _ := l.adv.discLoss(newScopes(root), real, fake, tHat, eps2, cond, nil, nil, mask)
		g := Gradient(loss, real, fake)
		return ReduceSum(Square(g[0]), 1, 2, 3), ReduceSum(Square(g[1]), 1, 2, 3) // [B] each
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := grads.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	gr, gf := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
	if !(gf[2] > 0) || gf[0] != 0 || gf[1] != 0 || gf[3] != 0 {
		t.Errorf("per-fake ‖∂L_D/∂fake‖² = %v, want > 0 for the kept fake only", gf)
	}
	for i, v := range gr {
		if !(v > 0) {
			t.Errorf("real %d: ‖∂L_D/∂real‖² = %g, want > 0 (every real counts)", i, v)
		}
	}
	diff, err := model.NewExec(be, store, func(root *model.Scope, real, fake, tHat, eps2, cond *Node) (*Node, *Node) {
		root.SetTraining(real.Graph(), true)
		sc := newScopes(root)
		lm, tm := l.adv.discLoss(sc, real, fake, tHat, eps2, cond, nil, nil, OnesLike(tHat))
		ln, tn := l.adv.discLoss(sc, real, fake, tHat, eps2, cond, nil, nil, nil)
		return Sub(lm, ln), Sub(tm["d_gap/t1"], tn["d_gap/t1"])
	})
	if err != nil {
		t.Fatal(err)
	}
	if outs, err = diff.Call(args...); err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if d := tensors.ToScalar[float32](o); math.Abs(float64(d)) > 1e-5 {
			t.Errorf("output %d: all-ones mask differs from no mask by %g", i, d)
		}
	}
	lc.HeadTMin = 1.5
	if err := lc.Validate(nil); err == nil || !strings.Contains(err.Error(), "ladd.head_t_min") {
		t.Errorf("head_t_min 1.5: error %v", err)
	}
}
