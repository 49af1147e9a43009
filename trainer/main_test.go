package trainer

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fewstep-trainer-test-")
	if err != nil {
		panic(err)
	}
	pkgTmp = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
