//go:build unix

package checkpoints

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// crashEnv names the run directory in which the child process of TestCrashMidSave saves and dies.
const crashEnv = "FEWSTEP_CHECKPOINTS_CRASH_RUN"

// crashTensorLen makes the checkpoint large enough (4 MiB) that the kill lands mid-file.
const crashTensorLen = 1 << 20

// TestCrashMidSave re-executes the test binary: the child saves step 1, then is SIGKILLed by
// TestHookMidWrite halfway through saving step 2. The parent checks that step 1 is intact, that
// no step-2 checkpoint exists, and that the next Save removes the leftover temp file.
func TestCrashMidSave(t *testing.T) {
	if run := os.Getenv(crashEnv); run != "" {
		crashChild(t, RunDir(run))
		return
	}
	r := RunDir(filepath.Join(t.TempDir(), "run"))
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidSave$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+string(r))
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}

	entries, err := os.ReadDir(r.CheckpointDir())
	if err != nil {
		t.Fatal(err)
	}
	var temps []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".ckpt-000000002.safetensors.tmp-") {
			temps = append(temps, e.Name())
		}
	}
	if len(temps) != 1 {
		t.Fatalf("want exactly one leftover temp file of step 2, directory holds %v", entries)
	}
	if info, err := os.Stat(filepath.Join(r.CheckpointDir(), temps[0])); err != nil || info.Size() < 2*crashTensorLen {
		t.Errorf("leftover temp file should hold about half the data: %v, %v", info, err)
	}
	if _, err := os.Stat(r.CheckpointPath(2)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("step-2 checkpoint exists after the crash: %v", err)
	}

	step, ts, md, err := LoadLatest(r)
	if err != nil || step != 1 {
		t.Fatalf("LoadLatest after crash = step %d, %v; want step 1", step, err)
	}
	assertSameTensors(t, stateAt(t, 1, crashTensorLen), ts)
	if md["run"] != "crash" {
		t.Errorf("metadata = %v", md)
	}
	if steps, err := List(r); err != nil || !slices.Equal(steps, []int64{1}) {
		t.Errorf("List = %v, %v; want [1]", steps, err)
	}

	if _, err := Save(r, 3, stateAt(t, 3, 8), nil, 0); err != nil {
		t.Fatal(err)
	}
	assertDirHolds(t, r.CheckpointDir(), "ckpt-000000001.safetensors", "ckpt-000000003.safetensors")
}

// crashChild runs in the child process: save step 1, then die halfway through step 2.
func crashChild(t *testing.T, r RunDir) {
	if _, err := Save(r, 1, stateAt(t, 1, crashTensorLen), map[string]string{"run": "crash"}, 0); err != nil {
		t.Fatal(err)
	}
	TestHookMidWrite = func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is delivered asynchronously; never return into the write.
	}
	_, err := Save(r, 2, stateAt(t, 2, crashTensorLen), map[string]string{"run": "crash"}, 0)
	t.Fatalf("child survived saving step 2: %v", err)
}
