package sampling

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

func TestSpacings(t *testing.T) {
	sched := models.Schedule{Kind: "cosine"}
	cfg := DefaultConfig()
	cfg.Steps = 4
	get := func(spacing string) []float64 {
		c := cfg
		c.Spacing = spacing
		ts, err := Times(c, sched, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 5 || ts[4] != 0 {
			t.Fatalf("%s: %v, want 5 times ending at 0", spacing, ts)
		}
		return ts
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if ts := get("trailing"); !near(ts[0], 1) || !near(ts[1], 0.75) || !near(ts[3], 0.25) {
		t.Errorf("trailing: %v", ts)
	}
	if ts := get("leading"); !near(ts[0], 0.751) || !near(ts[3], 0.001) {
		t.Errorf("leading: %v", ts)
	}
	tMin := 2 / math.Pi * math.Atan(0.002) // cosine: σ/α = tan(πt/2)
	if ts := get("uniform"); !near(ts[0], 1) || !near(ts[3], tMin) || !near(ts[1]-ts[2], ts[2]-ts[3]) {
		t.Errorf("uniform: %v (t_min %g)", ts, tMin)
	}
	// karras: σ/α at t_1..t_3 follows EDM eq. 5 from 80 to 0.002 with ρ = 7.
	ts := get("karras")
	for i := 1; i < 4; i++ {
		a, b := math.Pow(80, 1/7.0), math.Pow(0.002, 1/7.0)
		want := math.Pow(a+float64(i)/3*(b-a), 7)
		if got := sched.SigmaBar(ts[i]); math.Abs(got-want) > 1e-6*want {
			t.Errorf("karras σ_%d = %g, want %g", i, got, want)
		}
	}
	if ts[0] != 1 {
		t.Errorf("karras t_0 = %g, want t_max", ts[0])
	}
	ls := get("logsnr")
	if d1, d2 := sched.LogSNR(ls[2])-sched.LogSNR(ls[1]), sched.LogSNR(ls[3])-sched.LogSNR(ls[2]); math.Abs(d1-d2) > 1e-6 {
		t.Errorf("logsnr steps %g, %g differ", d1, d2)
	}
	cfg.Spacing, cfg.Timesteps = "list", []float64{0.9, 0.5, 0.2}
	if ts, err := Times(cfg, sched, 1, nil); err != nil || len(ts) != 4 || ts[1] != 0.5 {
		t.Errorf("list: %v, %v", ts, err)
	}
	cfg.Timesteps = []float64{0.5, 0.9}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sample.timesteps") {
		t.Errorf("increasing list: error %v", err)
	}
}

// TestStudentSpacing: a distilled student samples on its own K times at K steps, on the trailing
// times at other step counts, and a model without student times is refused.
func TestStudentSpacing(t *testing.T) {
	sched := models.Schedule{Kind: "cosine"}
	cfg := DefaultConfig()
	cfg.Spacing = "student"
	student := []float64{1, 0.5, 0.25}
	for _, tc := range []struct {
		steps int
		want  []float64
	}{{3, []float64{1, 0.5, 0.25, 0}}, {2, []float64{1, 0.5, 0}}, {4, []float64{1, 0.75, 0.5, 0.25, 0}}, {1, []float64{1, 0}}} {
		cfg.Steps = tc.steps
		ts, err := Times(cfg, sched, 1, student)
		if err != nil || !slices.Equal(ts, tc.want) {
			t.Errorf("%d steps: %v, %v; want %v", tc.steps, ts, err, tc.want)
		}
	}
	cfg.Steps = 3
	if _, err := Times(cfg, sched, 1, nil); err == nil || !strings.Contains(err.Error(), "not a distilled student") {
		t.Errorf("no student times: error %v", err)
	}
	if _, err := Times(cfg, sched, 1, []float64{0.5, 1, 0.25}); err == nil || !strings.Contains(err.Error(), "distill.student_times") {
		t.Errorf("unordered student times: error %v", err)
	}
}

func TestScheduleFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ays.json")
	if err := WriteScheduleFile(path, &ScheduleFile{Method: "ays-klub", Steps: 3, Times: []float64{1, 0.4, 0.1}, Schedule: "cosine", TMax: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ScheduleFile = path
	ts, err := Times(cfg, models.Schedule{Kind: "cosine"}, 1, nil)
	if err != nil || len(ts) != 4 || ts[1] != 0.4 || ts[3] != 0 {
		t.Fatalf("schedule file times %v, %v", ts, err)
	}
	if _, err := Times(cfg, models.Schedule{Kind: "flow"}, 1, nil); err == nil || !strings.Contains(err.Error(), "cosine") {
		t.Errorf("schedule mismatch: error %v", err)
	}
	if _, err := Times(cfg, models.Schedule{Kind: "cosine", Shift: 1}, 1, nil); err != nil {
		t.Errorf("shift 1 against a file without shift: %v", err)
	}
	if _, err := Times(cfg, models.Schedule{Kind: "cosine", Shift: 0.5}, 1, nil); err == nil || !strings.Contains(err.Error(), "diffusion.shift 1, the model uses 0.5") {
		t.Errorf("shift mismatch: error %v", err)
	}
	for name, text := range map[string]string{
		"garbage":  "{",
		"format":   `{"format":"x","steps":1,"times":[1]}`,
		"count":    `{"format":"fewstep-schedule/1","steps":2,"times":[1]}`,
		"order":    `{"format":"fewstep-schedule/1","steps":2,"times":[0.5,0.9]}`,
		"negative": `{"format":"fewstep-schedule/1","steps":2,"times":[0.5,-1]}`,
	} {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadScheduleFile(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not name the file", name, err)
		}
	}
}

// TestNFE: guidance doubles the count, Heun's corrector adds one per step but the last, and a
// guidance interval skips the null half outside it.
func TestNFE(t *testing.T) {
	den := testGauss.denoiser(models.Schedule{Kind: "cosine"})
	for _, tc := range []struct {
		sampler  string
		cfg      float64
		interval []float64
		want     int
	}{{"ddim", 1, nil, 10}, {"ddim", 2, nil, 20}, {"heun", 1, nil, 19}, {"heun", 2, nil, 38},
		{"dpmpp-2m", 2, []float64{0.35, 0.75}, 14}} {
		cfg := DefaultConfig()
		cfg.Sampler, cfg.CFG, cfg.GuidanceInterval, cfg.Steps = tc.sampler, tc.cfg, tc.interval, 10
		smp, err := NewSampler(testBackend(t), model.NewStore(), Model{Den: den, Scope: "g", TMax: 1}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := smp.NFE(); got != tc.want {
			t.Errorf("%s cfg %g interval %v: NFE %d, want %d", tc.sampler, tc.cfg, tc.interval, got, tc.want)
		}
	}
}

// TestNoiseCorrection: an eps-model that predicts ε̂ = 0 gives x̂0 = x/α; with noise correction the
// first DDIM step uses the true x_T as ε̂: x_s = α_s·x_T/α_T + σ_s·x_T, without it x_s = α_s·x_T/α_T.
func TestNoiseCorrection(t *testing.T) {
	sched := models.Schedule{Kind: "cosine"}
	zero := &models.Denoiser{Net: func(_ *model.Scope, xt, _, _ *Node) *Node { return ZerosLike(xt) }, Prediction: models.PredEps, Schedule: sched}
	const tMax = 0.9
	for _, mode := range []string{"on", "off", "auto"} {
		cfg := DefaultConfig()
		cfg.Steps, cfg.CFG, cfg.ClipX0, cfg.NoiseCorrection = 2, 1, false, mode
		cfg.Spacing, cfg.Timesteps = "list", []float64{tMax, 0.5}
		smp, err := NewSampler(testBackend(t), model.NewStore(), Model{Den: zero, Scope: "z", TMax: tMax, Distilled: true}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		smp.times = []float64{tMax, 0.5} // stop after the first step
		got, err := smp.SampleRaw([]uint64{7}, []int32{0}, 1, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		at, _ := sched.AlphaSigma(tMax)
		as, ss := sched.AlphaSigma(0.5)
		xT := NoiseForSeed(7, 2)
		for j := range 2 {
			want := as * float64(xT[j]) / at
			if mode != "off" { // auto: distilled eps-student → on
				want += ss * float64(xT[j])
			}
			if math.Abs(float64(got[j])-want) > 1e-4*math.Abs(want)+1e-6 {
				t.Errorf("noise correction %s: x_s[%d] = %g, want %g", mode, j, got[j], want)
			}
		}
	}
}

// TestNoiseCorrectionAtEveryStepCount: with t_max = 0.95 (not a float for which t_max·n/n is
// exact), the first step of every trailing schedule still starts at t_max and gets the noise
// correction. (It silently did not at 3 steps when the times were computed as t_max·(n−i)/n.)
func TestNoiseCorrectionAtEveryStepCount(t *testing.T) {
	sched := models.Schedule{Kind: "cosine"}
	zero := &models.Denoiser{Net: func(_ *model.Scope, xt, _, _ *Node) *Node { return ZerosLike(xt) }, Prediction: models.PredEps, Schedule: sched}
	for n := 1; n <= 8; n++ {
		cfg := DefaultConfig()
		cfg.Steps, cfg.CFG, cfg.Spacing, cfg.NoiseCorrection = n, 1, "trailing", "on"
		smp, err := NewSampler(testBackend(t), model.NewStore(), Model{Den: zero, Scope: "z", TMax: 0.95, Distilled: true}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := smp.Plan()
		if err != nil {
			t.Fatal(err)
		}
		if !plan[0].NoiseCorrection || plan[0].T != 0.95 {
			t.Errorf("%d steps: first step at t = %.17g, noise correction %v; want t = 0.95 with correction", n, plan[0].T, plan[0].NoiseCorrection)
		}
	}
}
