package checkpoints

import (
	"fmt"
	"os"
	"path/filepath"
)

// tempInfix separates a final file name from the random suffix of its temporary file:
// the temporary file of "dir/base" is "dir/." + base + tempInfix + random.
const tempInfix = ".tmp-"

// WriteFileAtomic writes data to path via a temp file in the same directory (name prefix "."+base+".tmp-"), fsync, rename,
// then fsync of the directory. On any error the temp file is removed and path is untouched.
//
// perm is applied to the file as given (the umask is not applied). The only error after which path has
// already been replaced is a failed fsync of the directory (after the rename); the error says so.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, perm, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	})
}

// writeAtomic creates a temp file next to path, lets fill write its contents, then fsyncs, closes and
// renames it to path and fsyncs the directory. On error before the rename the temp file is removed.
func writeAtomic(path string, perm os.FileMode, fill func(f *os.File) error) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if base == "." || base == string(filepath.Separator) {
		return fmt.Errorf("checkpoints: write %q: not a file path", path)
	}
	f, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("checkpoints: write %s: create temp file: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if err != nil && !renamed {
			_ = f.Close() // may already be closed; the error is irrelevant then.
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("checkpoints: write %s: chmod temp file %s: %w", path, tmp, err)
	}
	if err = fill(f); err != nil {
		return fmt.Errorf("checkpoints: write %s (temp file %s): %w", path, tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("checkpoints: write %s: fsync temp file %s: %w", path, tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("checkpoints: write %s: close temp file %s: %w", path, tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("checkpoints: write %s: rename temp file %s: %w", path, tmp, err)
	}
	renamed = true
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("checkpoints: write %s: file renamed into place, but fsync of directory failed: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory so that renames and creations inside it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return d.Close()
}
