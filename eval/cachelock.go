package eval

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Cache lock of a classifier being trained: two fewstep processes that miss the same cached
// classifier (an eval and a quality-tuning run started together) would otherwise both train it.
// The first creates CachePath+".lock" and refreshes its time while it trains; the others wait for
// the cache file. A lock not refreshed for lockStaleAfter (its process died) is taken over.
var (
	lockPollEvery  = 2 * time.Second
	lockHeartbeat  = 20 * time.Second
	lockStaleAfter = 2 * time.Minute
)

// lockCache waits until this process holds the lock of the cache file at path (release removes
// it) or until another process has written the file (ready: load it instead of training).
func lockCache(path string, out io.Writer) (release func(), ready bool, err error) {
	lock := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, fmt.Errorf("classifier cache: %w", err)
	}
	told := false
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			done := make(chan struct{})
			go func() {
				t := time.NewTicker(lockHeartbeat)
				defer t.Stop()
				for {
					select {
					case <-done:
						return
					case now := <-t.C:
						_ = os.Chtimes(lock, now, now)
					}
				}
			}()
			return func() { close(done); _ = os.Remove(lock) }, false, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("classifier cache lock %s: %w", lock, err)
		}
		if _, err := os.Stat(path); err == nil {
			return nil, true, nil
		}
		st, err := os.Stat(lock)
		if err == nil && time.Since(st.ModTime()) > lockStaleAfter {
			if out != nil {
				fmt.Fprintf(out, "classifier cache lock %s not refreshed for %s: taking it over\n", lock, time.Since(st.ModTime()).Round(time.Second))
			}
			_ = os.Remove(lock)
			continue
		}
		if !told && out != nil {
			fmt.Fprintf(out, "another fewstep is training this classifier (lock %s): waiting for %s\n", lock, path)
			told = true
		}
		time.Sleep(lockPollEvery)
	}
}
