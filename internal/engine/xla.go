//go:build xla

package engine

import (
	"os"

	// XLA/PJRT backend (cgo). The autoinstall package is deliberately NOT imported: no downloads.
	_ "github.com/gomlx/go-xla/compute/xla"
)

func init() {
	// Belt and braces: even if an auto-installer got linked, never download silently.
	if _, ok := os.LookupEnv("GOMLX_NO_AUTO_INSTALL"); !ok {
		_ = os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	}
}
