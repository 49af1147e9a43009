//go:build !goexperiment.simd

package engine

// Built without GOEXPERIMENT=simd: the pure-Go backend runs ~20x slower; the CLI warns loudly.
const simdEnabled = false
