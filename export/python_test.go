package export

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/checkpoints"
)

const python = "/usr/bin/python3"

// runReader runs scripts/read_safetensors.py on path and returns stdout, stderr and the exit code.
func runReader(t *testing.T, path string) (string, string, int) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s not available: %v", python, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(python, filepath.Join("..", "scripts", "read_safetensors.py"), path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("run %s: %v", python, err)
	return "", "", 0
}

// TestPythonReader: the independent standard-library reader accepts an exported file and lists
// exactly its tensors (name, dtype, shape) and metadata keys; it rejects a corrupted one.
func TestPythonReader(t *testing.T) {
	m, path := writeTiny(t)
	out, errOut, code := runReader(t, path)
	if code != 0 {
		t.Fatalf("exit code %d: %s%s", code, out, errOut)
	}
	var want []string
	for _, name := range m.Names() {
		dims := m.Tensors[name].Shape().Dimensions
		parts := make([]string, len(dims))
		for i, d := range dims {
			parts[i] = fmt.Sprint(d)
		}
		want = append(want, fmt.Sprintf("  %s F32 [%s]", name, strings.Join(parts, ", ")))
	}
	var got []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "  ") {
			got = append(got, line)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("tensor lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, md, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(md))
	for _, line := range []string{
		fmt.Sprintf("tensors: %d", len(m.Tensors)),
		"metadata keys: " + strings.Join(keys, ", "),
		"export format: " + Format,
		"8-byte aligned",
		"OK",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}

	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	file[len(file)-1] ^= 0x40
	if err := os.WriteFile(bad, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runReader(t, bad); code != 1 || !strings.Contains(errOut, "CRC-32C") {
		t.Errorf("corrupted file: exit code %d, stderr %q; want 1 and a CRC-32C error", code, errOut)
	}
	if err := os.WriteFile(bad, file[:len(file)-8], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runReader(t, bad); code != 1 || !strings.Contains(errOut, "cover") {
		t.Errorf("truncated file: exit code %d, stderr %q; want 1 and a coverage error", code, errOut)
	}
}
