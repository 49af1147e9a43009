package models

import (
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// BenchmarkConvGEMMs times the three GEMM orientations of a 3×3 conv at RefUNet-S's first level
// (K = 9·32, N = 32, M = 64·34·34) on the pure-Go backend.
func BenchmarkConvGEMMs(b *testing.B) {
	backend, err := testBackendB()
	if err != nil {
		b.Fatal(err)
	}
	const k, n, m = 288, 32, 64 * 34 * 34
	mk := func(dims ...int) *tensors.Tensor {
		size := 1
		for _, d := range dims {
			size *= d
		}
		return tensors.FromFlatDataAndDimensions(make([]float32, size), dims...)
	}
	cases := []struct {
		name string
		fn   func(a, c *Node) *Node
		a, c *tensors.Tensor
	}{
		{"fwd w[N,K]·x[K,M]", func(a, c *Node) *Node { return DotGeneral(a, []int{1}, nil, c, []int{0}, nil) }, mk(n, k), mk(k, m)},
		{"fwd x[M,K]·w[K,N]", func(a, c *Node) *Node { return DotGeneral(a, []int{1}, nil, c, []int{0}, nil) }, mk(m, k), mk(k, n)},
		{"dw dy[N,M]·x[K,M]ᵀ", func(a, c *Node) *Node { return DotGeneral(a, []int{1}, nil, c, []int{1}, nil) }, mk(n, m), mk(k, m)},
		{"dw x[K,M]·dy[N,M]ᵀ", func(a, c *Node) *Node { return DotGeneral(a, []int{1}, nil, c, []int{1}, nil) }, mk(k, m), mk(n, m)},
		{"dx wᵀ[K,N]·dy[N,M]", func(a, c *Node) *Node { return DotGeneral(a, []int{1}, nil, c, []int{0}, nil) }, mk(k, n), mk(n, m)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			exec := MustNewExec(backend, tc.fn)
			exec.MustCall(tc.a, tc.c)[0].MustFinalizeAll()
			b.ResetTimer()
			for range b.N {
				exec.MustCall(tc.a, tc.c)[0].MustFinalizeAll()
			}
			b.ReportMetric(float64(2*k*n*m)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
