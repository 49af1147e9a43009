package checkpoints

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
)

// MetadataStep is the metadata key under which Save records the step; LoadStep and LoadLatest check it
// against the step in the file name when present.
const MetadataStep = "fewstep.step"

const (
	ckptPrefix = "ckpt-"
	ckptSuffix = ".safetensors"
)

// checkpointName is "ckpt-<step>.safetensors" with the step zero-padded to 9 digits (more if needed).
func checkpointName(step int64) string { return fmt.Sprintf("%s%09d%s", ckptPrefix, step, ckptSuffix) }

// parseCheckpointName returns the step of a "ckpt-<9+ digits>.safetensors" name.
func parseCheckpointName(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, ckptPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, ckptSuffix); !ok || len(digits) < 9 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	step, err := strconv.ParseInt(digits, 10, 64)
	if err != nil { // out of int64 range
		return 0, false
	}
	return step, true
}

// isCheckpointTemp reports whether name is a temporary file left by writing a checkpoint.
func isCheckpointTemp(name string) bool {
	return strings.HasPrefix(name, "."+ckptPrefix) && strings.Contains(name, ckptSuffix+tempInfix)
}

// Save writes RUN/checkpoints/ckpt-<step>.safetensors atomically (via WriteSafetensors), then deletes older ckpt files so
// that only the newest `keep` remain (keep <= 0 means keep all). Leftover temp files from crashed writes are removed too.
//
// The checkpoints directory is created if needed, and metadata key MetadataStep is set to the step. The file just
// written is never deleted, even if newer steps exist. If the checkpoint was written but cleaning up failed, the path
// is returned together with the error.
func Save(r RunDir, step int64, ts []NamedTensor, metadata map[string]string, keep int) (path string, err error) {
	if step < 0 {
		return "", fmt.Errorf("checkpoints: save step %d in %s: negative step", step, r.CheckpointDir())
	}
	path = r.CheckpointPath(step)
	if err := os.MkdirAll(r.CheckpointDir(), 0o755); err != nil {
		return "", fmt.Errorf("checkpoints: save %s: %w", path, err)
	}
	md := maps.Clone(metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[MetadataStep] = strconv.FormatInt(step, 10)
	if err := WriteSafetensors(path, ts, md); err != nil {
		return "", err
	}
	if err := prune(r, step, keep); err != nil {
		return path, err
	}
	return path, nil
}

// prune removes checkpoint temp files and all but the newest keep checkpoints (never the one of step
// justSaved, nor the best one recorded in RUN/best.json).
func prune(r RunDir, justSaved int64, keep int) error {
	dir := r.CheckpointDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("checkpoints: prune %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if isCheckpointTemp(e.Name()) && !e.IsDir() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("checkpoints: remove leftover temp file: %w", err))
			}
		}
	}
	if keep > 0 {
		steps, err := List(r)
		if err != nil {
			return err
		}
		best, hasBest, err := ReadBest(r)
		if err != nil {
			return err
		}
		for i := 0; i < len(steps)-keep; i++ {
			if steps[i] == justSaved || (hasBest && steps[i] == best.Step) {
				continue
			}
			if err := os.Remove(r.CheckpointPath(steps[i])); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("checkpoints: remove old checkpoint: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// List returns the checkpoint steps present (ascending), ignoring temp files and names that don't parse.
// A missing checkpoints directory gives an empty list and no error.
func List(r RunDir) ([]int64, error) {
	dir := r.CheckpointDir()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoints: list %s: %w", dir, err)
	}
	var steps []int64
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if step, ok := parseCheckpointName(e.Name()); ok {
			steps = append(steps, step)
		}
	}
	slices.Sort(steps)
	// "ckpt-000000001.safetensors" and "ckpt-0000000001.safetensors" parse to the same step.
	return slices.Compact(steps), nil
}

// LoadLatest loads the newest checkpoint that reads and validates; if the newest is corrupt it returns an error that
// names it (it does not silently fall back), and names the previous valid checkpoint's path if one exists, so the user
// can move the corrupt one away. Returns an os.ErrNotExist-wrapping error when there is no checkpoint.
func LoadLatest(r RunDir) (step int64, ts map[string]*tensors.Tensor, metadata map[string]string, err error) {
	steps, err := List(r)
	if err != nil {
		return 0, nil, nil, err
	}
	if len(steps) == 0 {
		return 0, nil, nil, fmt.Errorf("checkpoints: no checkpoint in %s: %w", r.CheckpointDir(), os.ErrNotExist)
	}
	step = steps[len(steps)-1]
	ts, metadata, err = LoadStep(r, step)
	if err == nil {
		return step, ts, metadata, nil
	}
	hint := "no earlier checkpoint is valid"
	bad := []string{r.CheckpointPath(step)}
	for i := len(steps) - 2; i >= 0; i-- {
		p := r.CheckpointPath(steps[i])
		if verifyStep(p, steps[i]) == nil {
			hint = fmt.Sprintf("the previous valid checkpoint is %s: move %s away to resume from it",
				p, strings.Join(bad, " and "))
			break
		}
		bad = append(bad, p)
	}
	return 0, nil, nil, fmt.Errorf("checkpoints: newest checkpoint %s (step %d) is unreadable (%s): %w",
		r.CheckpointPath(step), step, hint, err)
}

// LoadStep loads RUN/checkpoints/ckpt-<step>.safetensors with every check of ReadSafetensors, plus the
// MetadataStep check when present.
func LoadStep(r RunDir, step int64) (map[string]*tensors.Tensor, map[string]string, error) {
	path := r.CheckpointPath(step)
	ts, md, err := ReadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	if err := checkStepMetadata(path, step, md); err != nil {
		return nil, nil, err
	}
	return ts, md, nil
}

// verifyStep validates a checkpoint file without keeping its tensors.
func verifyStep(path string, step int64) error {
	_, md, err := readSafetensors(path, false)
	if err != nil {
		return err
	}
	return checkStepMetadata(path, step, md)
}

// checkStepMetadata checks that metadata MetadataStep, if present, matches the step in the file name.
func checkStepMetadata(path string, step int64, md map[string]string) error {
	s, ok := md[MetadataStep]
	if !ok {
		return nil
	}
	if got, err := strconv.ParseInt(s, 10, 64); err != nil || got != step {
		return fmt.Errorf("checkpoints: read %s: metadata %s=%q does not match the step %d in the file name",
			path, MetadataStep, s, step)
	}
	return nil
}
