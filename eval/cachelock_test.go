package eval

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCacheLock: the first caller holds the lock (a second one waits) and release removes it; a
// waiter returns ready once the cache file appears; a lock not refreshed for lockStaleAfter is taken
// over.
func TestCacheLock(t *testing.T) {
	defer func(p, s time.Duration) { lockPollEvery, lockStaleAfter = p, s }(lockPollEvery, lockStaleAfter)
	lockPollEvery, lockStaleAfter = 10*time.Millisecond, time.Hour
	path := filepath.Join(t.TempDir(), "classifiers", "c.safetensors") // the directory does not exist yet
	release, ready, err := lockCache(path, nil)
	if err != nil || ready {
		t.Fatalf("first lock: ready %v, %v", ready, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = os.WriteFile(path, []byte("x"), 0o644)
	}()
	start := time.Now()
	if rel2, ready, err := lockCache(path, nil); err != nil || !ready || rel2 != nil {
		t.Fatalf("waiter: ready %v, %v", ready, err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Error("the waiter did not wait for the file")
	}
	release()
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("release left the lock: %v", err)
	}
	// A stale lock (its process died) is taken over.
	path2 := filepath.Join(t.TempDir(), "d.safetensors")
	if err := os.WriteFile(path2+".lock", []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(path2+".lock", old, old); err != nil {
		t.Fatal(err)
	}
	rel3, ready, err := lockCache(path2, nil)
	if err != nil || ready || rel3 == nil {
		t.Fatalf("stale lock: ready %v, %v", ready, err)
	}
	rel3()
}
