package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/fewstep/fewstep/data"
)

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadConfigsExitTwo: each bad-config case makes `fewstep train` exit with code 2.
func TestBadConfigsExitTwo(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"unknown-key.yaml":  "trainer:\n  stepz: 3\n",
		"wrong-type.yaml":   "trainer:\n  steps: three\n",
		"fractional.yaml":   "trainer:\n  batch_size: 2.5\n",
		"negative.yaml":     "trainer:\n  batch_size: -1\n",
		"zero.yaml":         "model:\n  groups: 0\n",
		"unknown-enum.yaml": "diffusion:\n  prediction: score\n",
	} {
		path := writeFile(t, dir, name, text)
		if code := run([]string{"train", "-config", path, "--dry-run"}); code != 2 {
			t.Errorf("%s: exit code %d, want 2", name, code)
		}
	}
	if code := run([]string{"train", "-config", "mnist-teacher", "-set", "trainer.nope=1", "--dry-run"}); code != 2 {
		t.Errorf("bad -set: exit code %d, want 2", code)
	}
	t.Setenv("FEWSTEP_TRAINER_STEPS", "1.5")
	if code := run([]string{"train", "-config", "mnist-teacher", "--dry-run"}); code != 2 {
		t.Errorf("bad env override: exit code %d, want 2", code)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"train", "-no-such-flag"}, {"sample"}, {"data", "import", "cifar"}} {
		if code := run(args); code != 2 {
			t.Errorf("fewstep %v: exit code %d, want 2", args, code)
		}
	}
	if code := run([]string{"train", "--dry-run"}); code != 0 {
		t.Errorf("dry run of the default config: exit code %d", code)
	}
}

// TestEndToEnd: import real MNIST, train the smoke config, resume it, sample a class grid.
func TestEndToEnd(t *testing.T) {
	if _, err := data.FindGoMNIST(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pq := filepath.Join(dir, "mnist-test.parquet")
	if code := run([]string{"data", "import", "mnist", "-split", "test", "-out", pq}); code != 0 {
		t.Fatalf("data import: exit code %d", code)
	}
	sets := []string{"-set", "data.train=" + pq, "-set", "run.out_dir=" + dir}
	if code := run(append([]string{"train", "-config", "smoke", "-stop-at", "20"}, sets...)); code != 0 {
		t.Fatalf("train: exit code %d", code)
	}
	runDir := filepath.Join(dir, "smoke")
	if code := run([]string{"train", "-resume", runDir}); code != 0 {
		t.Fatalf("train -resume: exit code %d", code)
	}
	out := filepath.Join(dir, "grid.png")
	if code := run([]string{"sample", "-run", runDir, "-steps", "3", "-class", "all", "-n", "2", "-out", out}); code != 0 {
		t.Fatalf("sample: exit code %d", code)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 10 rows (classes) × 2 columns of 32×32 cells with 2-pixel borders.
	if b := img.Bounds(); b.Dx() != 2*34+2 || b.Dy() != 10*34+2 {
		t.Fatalf("grid is %dx%d, want %dx%d", b.Dx(), b.Dy(), 2*34+2, 10*34+2)
	}
	if code := run([]string{"sample", "-run", runDir, "-class", "12"}); code != 2 {
		t.Fatalf("sample -class 12: exit code %d, want 2", code)
	}
}
