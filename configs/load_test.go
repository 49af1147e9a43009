package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/trainer"
)

func writeYAML(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadConfigs: every mistake is a *Error naming the source (file, env var or -set) and the key.
func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		sets, env  []string
		source     string // "" means the YAML file
		key, msg   string
	}{
		{"unknown key", "trainer:\n  stepz: 10\n", nil, nil, "", "trainer.stepz", `did you mean "steps"`},
		{"unknown section", "trainr:\n  steps: 10\n", nil, nil, "", "trainr", `did you mean "trainer"`},
		{"wrong type", "trainer:\n  steps: many\n", nil, nil, "", "trainer.steps", "int"},
		{"fractional integer", "trainer:\n  steps: 1.5\n", nil, nil, "", "trainer.steps", "whole number"},
		{"negative size", "trainer:\n  batch_size: -4\n", nil, nil, "", "trainer.batch_size", "positive"},
		{"zero size", "model:\n  base_channels: 0\n", nil, nil, "", "model.base_channels", "positive"},
		{"unknown enum", "diffusion:\n  schedule: sigmoid\n", nil, nil, "", "diffusion.schedule", "unknown value"},
		{"bool for float", "trainer:\n  lr: true\n", nil, nil, "", "trainer.lr", "float"},
		{"section not a map", "model: 3\n", nil, nil, "", "model", "section"},
		{"bad -set value", "", []string{"trainer.steps=1.25"}, nil, "-set trainer.steps=1.25", "trainer.steps", "whole number"},
		{"unknown -set key", "", []string{"trainer.foo=1"}, nil, "-set trainer.foo=1", "trainer.foo", "unknown key"},
		{"bad env value", "", nil, []string{"FEWSTEP_TRAINER_STEPS=lots"}, "environment FEWSTEP_TRAINER_STEPS", "trainer.steps", "int"},
		{"bad env section", "", nil, []string{"FEWSTEP_TRAINING_STEPS=3"}, "environment FEWSTEP_TRAINING_STEPS", "", "SECTION"},
		{"mismatched classes", "data:\n  num_classes: 7\n", nil, nil, "", "model.num_classes", "disagrees"},
		{"yaml syntax", "trainer:\n  steps: [1\n", nil, nil, "", "", "invalid YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeYAML(t, tc.yaml)
			_, _, err := Load(path, tc.sets, tc.env)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want *configs.Error", err, err)
			}
			wantSource := tc.source
			if wantSource == "" {
				wantSource = path
			}
			if ce.Source != wantSource || ce.Key != tc.key || !strings.Contains(ce.Error(), tc.msg) {
				t.Fatalf("got source %q key %q msg %q; want source %q key %q and a message containing %q",
					ce.Source, ce.Key, ce.Msg, wantSource, tc.key, tc.msg)
			}
		})
	}
}

// TestOverrides: env overrides the file, -set overrides env; values are typed.
func TestOverrides(t *testing.T) {
	path := writeYAML(t, "trainer:\n  steps: 10\n  lr: 1e-4\nmodel:\n  channel_mult: [1, 2]\n")
	cfg, resolved, err := Load(path, []string{"trainer.steps=30", "model.channel_mult=[1,1,2]"},
		[]string{"FEWSTEP_TRAINER_STEPS=20", "FEWSTEP_TRAINER_BATCH_SIZE=8", "HOME=/root", "FEWSTEP_CACHE_DIR=/tmp/c", "FEWSTEP_ONNXRUNTIME=/x.so", "FEWSTEP_BIN=bin/fewstep-onnx", "FEWSTEP_ENGINE=go"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Trainer.Steps != 30 || cfg.Trainer.BatchSize != 8 || cfg.Trainer.LR != 1e-4 {
		t.Fatalf("steps %d batch %d lr %g; want 30, 8, 1e-4", cfg.Trainer.Steps, cfg.Trainer.BatchSize, cfg.Trainer.LR)
	}
	if len(cfg.Model.ChannelMult) != 3 || cfg.Model.ChannelMult[2] != 2 {
		t.Fatalf("channel_mult %v, want [1 1 2]", cfg.Model.ChannelMult)
	}
	if cfg.Sample.Steps != Default().Sample.Steps {
		t.Fatalf("untouched key sample.steps = %d, want the default %d", cfg.Sample.Steps, Default().Sample.Steps)
	}
	// The resolved YAML loads back to the same config.
	again, _, err := Load(writeYAML(t, string(resolved)), nil, nil)
	if err != nil {
		t.Fatalf("resolved config does not load: %v\n%s", err, resolved)
	}
	if again.Trainer != cfg.Trainer || fmt.Sprint(again.Sample) != fmt.Sprint(cfg.Sample) || again.Diffusion != cfg.Diffusion {
		t.Fatal("resolved config does not round-trip")
	}
}

// TestPresetsLoad: every embedded config loads and validates.
func TestPresetsLoad(t *testing.T) {
	names := Presets()
	if len(names) < 2 {
		t.Fatalf("presets: %v", names)
	}
	for _, name := range names {
		if _, _, err := Load(name, nil, nil); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	if _, _, err := Load("no-such-preset", nil, nil); err == nil || !strings.Contains(err.Error(), "mnist-teacher") {
		t.Errorf("unknown preset error %v should list the presets", err)
	}
}

// TestStudentSpacingOfPreset: the Imagine Flash preset's student samples on the times it trains at
// (distill.student_times at 3 steps, trailing at 2), and only once it is a distilled student.
func TestStudentSpacingOfPreset(t *testing.T) {
	cfg, resolved, err := Load("mnist-imagineflash", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := cfg.Job(resolved)
	if _, err := trainer.GridSampler(nil, model.NewStore(), job); err == nil || !strings.Contains(err.Error(), "not a distilled student") {
		t.Fatalf("teacher job with spacing student: error %v", err)
	}
	job.Distilled = true
	for steps, want := range map[int][]float64{3: {1, 0.5, 0.25, 0}, 2: {1, 0.5, 0}, 4: {1, 0.75, 0.5, 0.25, 0}} {
		job.Sample.Steps = steps
		s, err := trainer.GridSampler(nil, model.NewStore(), job)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Times(); !slices.Equal(got, want) {
			t.Errorf("%d steps: times %v, want %v", steps, got, want)
		}
	}
}
