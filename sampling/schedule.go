package sampling

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/models"
)

// UniformTimes returns n+1 times evenly spaced from tMax down to 0 (the trailing spacing):
// t_0 = tMax > t_1 > … > t_n = 0. Host floats; a step goes from t_i to t_{i+1}.
func UniformTimes(n int, tMax float64) []float64 {
	ts := make([]float64, n+1)
	for i := range ts {
		ts[i] = tMax * (float64(n-i) / float64(n)) // t_0 = tMax exactly (noise correction gates on it)
	}
	return ts
}

// Times returns the n+1 times t_0 > … > t_n = 0 of cfg's schedule for n = cfg.Steps steps (or the
// schedule file's step count). Spacings, in continuous time t ∈ [0, tMax] (cf. Lin et al., arXiv
// 2305.08891, Table 2, for the discrete-time names):
//   - trailing: t_i = tMax·(n−i)/n; the first step starts at t_max (pure noise).
//   - leading:  t_i = tMax·(n−1−i)/n + tMax/1000 for i < n; the first step starts below t_max, the
//     known flaw of this spacing (kept for comparison).
//   - uniform:  n times evenly spaced from tMax down to t(σ_min), then 0.
//   - karras:   σ/α on EDM's ρ-spacing from min(σ(tMax), sigma_max) to sigma_min (Karras et al.,
//     arXiv 2206.00364, eq. 5), mapped back to t; t_0 = tMax.
//   - logsnr:   log-SNR λ = log(α²/σ²) evenly spaced from max(λ(tMax), −2·log(sigma_max)) to
//     −2·log(sigma_min) (the spacing DPM-Solver recommends, Lu et al., arXiv 2206.00927 §3.3);
//     t_0 = tMax.
//   - student:  a distilled student's own times (student, its distill.student_times, K of them):
//     those at n = K, the trailing times (what it trained on for other step counts) at n ≠ K; an
//     error for a model that is not a distilled student (student nil).
//   - list:     cfg.Timesteps, then 0.
//
// A schedule file (cfg.ScheduleFile) overrides the spacing.
func Times(cfg Config, sched models.Schedule, tMax float64, student []float64) ([]float64, error) {
	if cfg.ScheduleFile != "" {
		sf, err := ReadScheduleFile(cfg.ScheduleFile)
		if err != nil {
			return nil, err
		}
		if sf.Schedule != sched.Kind {
			return nil, fmt.Errorf("%s: schedule file is for the %s noise schedule, the model uses %s", cfg.ScheduleFile, sf.Schedule, sched.Kind)
		}
		if a, b := unitShift(sf.Shift), unitShift(sched.Shift); a != b {
			return nil, fmt.Errorf("%s: schedule file is for diffusion.shift %g, the model uses %g", cfg.ScheduleFile, a, b)
		}
		if err := checkDescending(sf.Times, tMax); err != nil {
			return nil, fmt.Errorf("%s: times: %w", cfg.ScheduleFile, err)
		}
		return append(append([]float64(nil), sf.Times...), 0), nil
	}
	n := cfg.Steps
	ts := make([]float64, n+1)
	tMin := sched.TimeOfLogSNR(-2*math.Log(cfg.SigmaMin), tMax)
	switch cfg.Spacing {
	case "trailing":
		return UniformTimes(n, tMax), nil
	case "leading":
		for i := range n {
			ts[i] = tMax*float64(n-1-i)/float64(n) + tMax/1000
		}
	case "uniform":
		for i := range n {
			ts[i] = tMax
			if n > 1 {
				ts[i] = tMax + (tMin-tMax)*float64(i)/float64(n-1)
			}
		}
	case "karras":
		sMax := min(sched.SigmaBar(tMax), cfg.SigmaMax)
		a, b := math.Pow(sMax, 1/cfg.Rho), math.Pow(cfg.SigmaMin, 1/cfg.Rho)
		for i := range n {
			frac := 0.0
			if n > 1 {
				frac = float64(i) / float64(n-1)
			}
			ts[i] = sched.TimeOfLogSNR(-2*cfg.Rho*math.Log(a+frac*(b-a)), tMax)
		}
		ts[0] = tMax
	case "logsnr":
		hi, lo := max(sched.LogSNR(tMax), -2*math.Log(cfg.SigmaMax)), -2*math.Log(cfg.SigmaMin)
		for i := range n {
			frac := 0.0
			if n > 1 {
				frac = float64(i) / float64(n-1)
			}
			ts[i] = sched.TimeOfLogSNR(hi+frac*(lo-hi), tMax)
		}
		ts[0] = tMax
	case "student":
		switch {
		case student == nil:
			return nil, fmt.Errorf("sample.spacing: student: the model is not a distilled student (it has no student times)")
		case len(student) != n:
			return UniformTimes(n, tMax), nil
		}
		if err := checkDescending(student, tMax); err != nil {
			return nil, fmt.Errorf("distill.student_times: %w", err)
		}
		return append(append([]float64(nil), student...), 0), nil
	case "list":
		if err := checkDescending(cfg.Timesteps, tMax); err != nil {
			return nil, fmt.Errorf("sample.timesteps: %w", err)
		}
		return append(append([]float64(nil), cfg.Timesteps...), 0), nil
	default:
		return nil, fmt.Errorf("sample.spacing: unknown value %q", cfg.Spacing)
	}
	return ts, nil
}

// unitShift reads an unset shift (0) as 1, unshifted.
func unitShift(s float64) float64 {
	if s == 0 {
		return 1
	}
	return s
}

// ScheduleFile is the JSON file of an optimized schedule: Times are the n evaluation times
// t_0 > … > t_{n−1} (the final step goes to 0).
type ScheduleFile struct {
	Format    string    `json:"format"` // "fewstep-schedule/1"
	Method    string    `json:"method"` // "ays-klub" for Align Your Steps
	Steps     int       `json:"steps"`
	Times     []float64 `json:"times"`
	Schedule  string    `json:"schedule"`        // the noise schedule the times belong to (cosine, linear, flow)
	Shift     float64   `json:"shift,omitempty"` // its diffusion.shift (absent: 1, unshifted)
	TMax      float64   `json:"t_max"`
	SigmaMin  float64   `json:"sigma_min"`
	KLUB      float64   `json:"klub"`                // the optimized KLUB estimate
	Baselines []Named   `json:"baselines,omitempty"` // KLUB of hand-made spacings on the same estimate
	Run       string    `json:"run,omitempty"`
	CFG       float64   `json:"cfg"`
	Samples   int       `json:"samples"`
	Init      string    `json:"init,omitempty"`   // refinement start (a spacing); "" = exact optimum over the grid
	Passes    int       `json:"passes,omitempty"` // refinement sweeps (early stopping)
}

// Named is a labelled number (a baseline's KLUB).
type Named struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// ScheduleFormat is the Format of schedule files.
const ScheduleFormat = "fewstep-schedule/1"

// ReadScheduleFile reads and checks a schedule file; errors name the file and the field.
func ReadScheduleFile(path string) (*ScheduleFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var sf ScheduleFile
	if err := json.Unmarshal(raw, &sf); err != nil {
		return nil, fmt.Errorf("%s: not a schedule file: %w", path, err)
	}
	if sf.Format != ScheduleFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, sf.Format, ScheduleFormat)
	}
	if len(sf.Times) == 0 || sf.Steps != len(sf.Times) {
		return nil, fmt.Errorf("%s: steps %d but %d times", path, sf.Steps, len(sf.Times))
	}
	if err := checkDescending(sf.Times, 1); err != nil {
		return nil, fmt.Errorf("%s: times: %w", path, err)
	}
	return &sf, nil
}

// WriteScheduleFile writes sf atomically as indented JSON.
func WriteScheduleFile(path string, sf *ScheduleFile) error {
	sf.Format = ScheduleFormat
	raw, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	return checkpoints.WriteFileAtomic(path, append(raw, '\n'), 0o644)
}
