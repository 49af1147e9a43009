package eval

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// randSym returns a random symmetric n×n matrix with entries ~ N(0, 1).
func randSym(rng *rand.Rand, n int) []float64 {
	a := make([]float64, n*n)
	for i := range n {
		for j := i; j < n; j++ {
			x := rng.NormFloat64()
			a[i*n+j], a[j*n+i] = x, x
		}
	}
	return a
}

// randPSD returns B·Bᵀ for a random n×r B: a PSD matrix of rank min(n, r).
func randPSD(rng *rand.Rand, n, r int) []float64 {
	b := make([]float64, n*r)
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	a := make([]float64, n*n)
	for i := range n {
		for j := range n {
			a[i*n+j] = dot64(b[i*r:i*r+r], b[j*r:j*r+r])
		}
	}
	return a
}

// maxAbsDiff returns max |x_i − y_i|.
func maxAbsDiff(x, y []float64) float64 {
	m := 0.0
	for i := range x {
		m = max(m, math.Abs(x[i]-y[i]))
	}
	return m
}

// maxAbs returns max |x_i|.
func maxAbs(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m = max(m, math.Abs(v))
	}
	return m
}

// transpose returns Aᵀ for a: [n, n].
func transpose(a []float64, n int) []float64 {
	t := make([]float64, n*n)
	for i := range n {
		for j := range n {
			t[j*n+i] = a[i*n+j]
		}
	}
	return t
}

func TestSymEigReconstructs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 7, 16, 33, 64, 129} { // 129 ≥ parallelMinN, odd: goroutines and a bye
		a := randSym(rng, n)
		vals, vecs, err := SymEig(a, n)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for j := 1; j < n; j++ {
			if vals[j] < vals[j-1] {
				t.Fatalf("n=%d: eigenvalues not ascending at %d: %g < %g", n, j, vals[j], vals[j-1])
			}
		}
		scale := maxAbs(a)
		if d := maxAbsDiff(vDiagVt(vecs, vals, n), a); d > 1e-10*scale {
			t.Errorf("n=%d: ‖V Λ Vᵀ − A‖_max = %.3g > 1e-10·%.3g", n, d, scale)
		}
		if d := maxAbsDiff(matMul(transpose(vecs, n), vecs, n), identity(n)); d > 1e-10 {
			t.Errorf("n=%d: ‖VᵀV − I‖_max = %.3g", n, d)
		}
		// A v_j = λ_j v_j column by column.
		av := matMul(a, vecs, n)
		for i := range n {
			for j := range n {
				if d := math.Abs(av[i*n+j] - vals[j]*vecs[i*n+j]); d > 1e-10*scale {
					t.Fatalf("n=%d: (A v_%d)_%d off by %.3g", n, j, i, d)
				}
			}
		}
	}
}

func TestSymEigKnown(t *testing.T) {
	// [[2, 1], [1, 2]] has eigenvalues 1 and 3 with eigenvectors (1, −1)/√2 and (1, 1)/√2.
	vals, vecs, err := SymEig([]float64{2, 1, 1, 2}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(vals[0]-1) > 1e-15 || math.Abs(vals[1]-3) > 1e-15 {
		t.Errorf("vals = %v, want [1 3]", vals)
	}
	r := 1 / math.Sqrt2
	if math.Abs(math.Abs(vecs[0*2+1])-r) > 1e-15 || math.Abs(vecs[0*2+1]-vecs[1*2+1]) > 1e-15 {
		t.Errorf("eigenvector of 3 = (%g, %g), want ±(1, 1)/√2", vecs[1], vecs[3])
	}
	// Diagonal input: no rotation, values sorted, vectors permuted unit vectors.
	vals, vecs, err = SymEig([]float64{5, 0, 0, 0, -1, 0, 0, 0, 2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{-1, 2, 5}; maxAbsDiff(vals, want) != 0 {
		t.Errorf("vals = %v, want %v", vals, want)
	}
	if want := []float64{0, 0, 1, 1, 0, 0, 0, 1, 0}; maxAbsDiff(vecs, want) != 0 {
		t.Errorf("vecs = %v, want %v", vecs, want)
	}
	// Zero matrix.
	vals, _, err = SymEig(make([]float64, 9), 3)
	if err != nil || maxAbs(vals) != 0 {
		t.Errorf("zero matrix: vals=%v err=%v", vals, err)
	}
}

func TestSymEigRepeatedAndGraded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 24
	q, _, err := SymEig(randSym(rng, n), n) // any orthonormal basis
	_ = q
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := SymEig(randSym(rng, n), n)
	// Eigenvalues with multiplicities and a 1e12 spread.
	want := make([]float64, n)
	for i := range want {
		want[i] = math.Pow(10, float64(i/4)*2-6) // 1e-6 ×4, 1e-4 ×4, …, 1e4 ×4
	}
	a := vDiagVt(v, want, n)
	vals, vecs, err := SymEig(a, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(vals[i]-want[i]) > 1e-10*want[n-1] {
			t.Errorf("λ_%d = %.17g, want %g", i, vals[i], want[i])
		}
	}
	if d := maxAbsDiff(vDiagVt(vecs, vals, n), a); d > 1e-10*maxAbs(a) {
		t.Errorf("reconstruction error %.3g", d)
	}
}

func TestSymEigErrors(t *testing.T) {
	cases := []struct {
		name string
		a    []float64
		n    int
		want string
	}{
		{"size", []float64{1, 2, 3}, 2, "3 values, want n·n = 2·2 = 4"},
		{"n0", nil, 0, "n must be ≥ 1, got 0"},
		{"asym", []float64{1, 2, 3, 4}, 2, "not symmetric"},
		{"nan", []float64{1, math.NaN(), math.NaN(), 1}, 2, "non-finite"},
	}
	for _, c := range cases {
		_, _, err := SymEig(c.a, c.n)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
	if _, err := SqrtPSD([]float64{1, 2, 3}, 2); err == nil || !strings.Contains(err.Error(), "SqrtPSD") {
		t.Errorf("SqrtPSD size error = %v", err)
	}
}

func TestSqrtPSDSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ n, rank int }{{1, 1}, {2, 2}, {5, 5}, {32, 32}, {32, 8}, {48, 1}} {
		a := randPSD(rng, c.n, c.rank)
		s, err := SqrtPSD(a, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(s, transpose(s, c.n)); d != 0 {
			t.Errorf("n=%d: root not symmetric (%.3g)", c.n, d)
		}
		if d := maxAbsDiff(matMul(s, s, c.n), a); d > 1e-10*maxAbs(a) {
			t.Errorf("n=%d rank=%d: ‖S² − A‖_max = %.3g (‖A‖_max = %.3g)", c.n, c.rank, d, maxAbs(a))
		}
		vals, _, _ := SymEig(s, c.n)
		if vals[0] < -1e-6*math.Sqrt(maxAbs(a)) {
			t.Errorf("n=%d: root has eigenvalue %g < 0", c.n, vals[0])
		}
	}
	// Exact: √diag(4, 9) = diag(2, 3).
	s, err := SqrtPSD([]float64{4, 0, 0, 9}, 2)
	if err != nil || maxAbsDiff(s, []float64{2, 0, 0, 3}) != 0 {
		t.Errorf("√diag(4, 9) = %v, %v", s, err)
	}
	// Slightly negative eigenvalue (rounding) is clamped: √diag(1, −1e-18) = diag(1, 0).
	s, err = SqrtPSD([]float64{1, 0, 0, -1e-18}, 2)
	if err != nil || maxAbsDiff(s, []float64{1, 0, 0, 0}) != 0 {
		t.Errorf("clamp: %v, %v", s, err)
	}
}

func TestSymEigTiming(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{256, 512} {
		if n > 256 && testing.Short() {
			continue
		}
		a := randPSD(rng, n, n)
		start := time.Now()
		vals, vecs, err := SymEig(a, n)
		el := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(vDiagVt(vecs, vals, n), a); d > 1e-10*maxAbs(a) {
			t.Errorf("n=%d: reconstruction error %.3g", n, d)
		}
		t.Logf("SymEig(%d): %v", n, el)
		if n == 256 && el > 10*time.Second {
			t.Errorf("SymEig(256) took %v, want a few seconds at most", el)
		}
	}
}
