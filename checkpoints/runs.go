package checkpoints

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// RunDir is the layout of a run directory:
//
//	RUN/config.yaml         resolved config
//	RUN/metrics.jsonl       one JSON object per logged step
//	RUN/checkpoints/ckpt-000001000.safetensors  (9-digit zero-padded step)
//	RUN/samples/step-000001000.png  sample grids
//	RUN/samples/final.png
//	RUN/best.json           best evaluated checkpoint (early stopping)
type RunDir string

// ConfigPath is RUN/config.yaml, the resolved config of the run.
func (r RunDir) ConfigPath() string { return filepath.Join(string(r), "config.yaml") }

// BestPath is RUN/best.json, the best checkpoint of early stopping (see Best).
func (r RunDir) BestPath() string { return filepath.Join(string(r), "best.json") }

// MetricsPath is RUN/metrics.jsonl, one JSON object per logged step.
func (r RunDir) MetricsPath() string { return filepath.Join(string(r), "metrics.jsonl") }

// CheckpointDir is RUN/checkpoints.
func (r RunDir) CheckpointDir() string { return filepath.Join(string(r), "checkpoints") }

// SamplesDir is RUN/samples.
func (r RunDir) SamplesDir() string { return filepath.Join(string(r), "samples") }

// SamplePath is RUN/samples/step-<step>.png, the sample grid at a step (9-digit zero-padded).
func (r RunDir) SamplePath(step int64) string {
	return filepath.Join(r.SamplesDir(), fmt.Sprintf("step-%09d.png", step))
}

// FinalSamplePath is RUN/samples/final.png, the sample grid at the end of training.
func (r RunDir) FinalSamplePath() string { return filepath.Join(r.SamplesDir(), "final.png") }

// CheckpointPath is RUN/checkpoints/ckpt-<step>.safetensors (9-digit zero-padded step).
func (r RunDir) CheckpointPath(step int64) string {
	return filepath.Join(r.CheckpointDir(), checkpointName(step))
}

// Create makes the run directory and its checkpoints/ and samples/ subdirectories
// (like os.MkdirAll: existing directories are fine).
func (r RunDir) Create() error {
	if r == "" {
		return errors.New("checkpoints: create run directory: empty path")
	}
	for _, dir := range []string{string(r), r.CheckpointDir(), r.SamplesDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("checkpoints: create run directory %s: %w", dir, err)
		}
	}
	return nil
}

// Best is the content of RUN/best.json: the step of the best evaluated checkpoint and its metric.
// Pruning never deletes that checkpoint.
type Best struct {
	Step   int64   `json:"step"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
}

// ReadBest reads RUN/best.json; ok is false when the run has none.
func ReadBest(r RunDir) (b Best, ok bool, err error) {
	raw, err := os.ReadFile(r.BestPath())
	if errors.Is(err, os.ErrNotExist) {
		return Best{}, false, nil
	}
	if err == nil {
		err = json.Unmarshal(raw, &b)
	}
	if err != nil {
		return Best{}, false, fmt.Errorf("%s: %w", r.BestPath(), err)
	}
	return b, true, nil
}
