package eval

// Dense symmetric linear algebra on the host for the metrics (FID's matrix square roots), standard
// library only. Matrices are float64, row-major, n×n.

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
)

const (
	// jacobiTol is the relative off-diagonal norm ‖off(A)‖_F / ‖A‖_F at which SymEig stops.
	// Cyclic Jacobi converges quadratically, so asking for 1e-14 instead of 1e-12 costs at most
	// one sweep and keeps small eigenvalues (which FID square-roots) accurate.
	jacobiTol = 1e-14
	// jacobiMaxSweeps bounds the sweeps; in practice 6–12 suffice for n ≤ 1024.
	jacobiMaxSweeps = 60
	// symTol is how far from symmetric (relative to max |a_ij|) an input may be; the input is
	// symmetrized as (A + Aᵀ)/2 before the iteration.
	symTol = 1e-9
)

// SymEig returns the eigenvalues (ascending) and eigenvectors of the symmetric matrix a by the
// cyclic Jacobi method (Golub & Van Loan, Matrix Computations, 4th ed., §8.5, cyclic Jacobi),
// with the numerically stable rotation of Rutishauser (Handbook for Automatic Computation II,
// Contribution II/1, 1971). a: [n, n] row-major, left unchanged. vals: [n], ascending.
// vecs: [n, n] row-major whose column j is the unit eigenvector of vals[j], so A = V Λ Vᵀ.
// It iterates until ‖off(A)‖_F ≤ 1e-14·‖A‖_F (quadratic convergence: 6–12 sweeps of n²/2 rotations).
func SymEig(a []float64, n int) (vals []float64, vecs []float64, err error) {
	w, err := symmetrized("SymEig", a, n)
	if err != nil {
		return nil, nil, err
	}
	vt := identity(n) // Vᵀ: row j is eigenvector j, so rotations touch contiguous rows.
	if err := jacobi(w, vt, n); err != nil {
		return nil, nil, err
	}
	vals, vecs = sortEig(w, vt, n)
	return vals, vecs, nil
}

// symEigvals returns the eigenvalues (ascending) of the symmetric a: [n, n] without accumulating
// eigenvectors (half the work of SymEig).
func symEigvals(a []float64, n int) ([]float64, error) {
	w, err := symmetrized("symEigvals", a, n)
	if err != nil {
		return nil, err
	}
	if err := jacobi(w, nil, n); err != nil {
		return nil, err
	}
	vals := diag(w, n)
	sort.Float64s(vals)
	return vals, nil
}

// SqrtPSD returns the symmetric positive semidefinite square root S = V diag(√max(λ,0)) Vᵀ of the
// symmetric matrix a: [n, n] row-major, via SymEig; negative eigenvalues (rounding on a PSD matrix)
// are clamped to 0 (Higham, Functions of Matrices, 2008, §6.1). Result: [n, n], S·S ≈ A for PSD A.
func SqrtPSD(a []float64, n int) ([]float64, error) {
	vals, vecs, err := SymEig(a, n)
	if err != nil {
		return nil, fmt.Errorf("SqrtPSD: %w", err)
	}
	root := make([]float64, n)
	for j, l := range vals {
		root[j] = math.Sqrt(max(l, 0))
	}
	return vDiagVt(vecs, root, n), nil
}

// symmetrized checks a: [n, n] (size, finite, symmetric to symTol) and returns a fresh (A + Aᵀ)/2.
func symmetrized(who string, a []float64, n int) ([]float64, error) {
	if n < 1 {
		return nil, fmt.Errorf("%s: n must be ≥ 1, got %d", who, n)
	}
	if len(a) != n*n {
		return nil, fmt.Errorf("%s: matrix has %d values, want n·n = %d·%d = %d", who, len(a), n, n, n*n)
	}
	scale := 0.0
	for i, v := range a {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: non-finite value %g at (%d, %d) of the %d×%d matrix", who, v, i/n, i%n, n, n)
		}
		scale = max(scale, math.Abs(v))
	}
	w := make([]float64, n*n)
	for i := range n {
		for j := i; j < n; j++ {
			x, y := a[i*n+j], a[j*n+i]
			if math.Abs(x-y) > symTol*scale {
				return nil, fmt.Errorf("%s: %d×%d matrix is not symmetric: a[%d][%d]=%g, a[%d][%d]=%g", who, n, n, i, j, x, j, i, y)
			}
			m := 0.5 * (x + y)
			w[i*n+j], w[j*n+i] = m, m
		}
	}
	return w, nil
}

// jacobi diagonalizes the symmetric w: [n, n] in place by cyclic Jacobi sweeps in the parallel
// (round-robin) ordering of Brent & Luk (SIAM J. Sci. Stat. Comput. 6, 1985; Golub & Van Loan §8.5):
// a sweep is n−1 rounds (n rounded up to even) of disjoint pairs (p, q) covering every pair once.
// Disjoint rotations commute, so a round applies all of them in one contiguous pass over W
// (applyRound) instead of a strided column walk per rotation: 4–5× faster at n = 512.
// When vt: [n, n] is non-nil, each rotation is applied to its rows, accumulating Vᵀ.
func jacobi(w, vt []float64, n int) error {
	total := frobSq(w)
	if total == 0 {
		return nil
	}
	target := jacobiTol * jacobiTol * total
	// Entries below skip are negligible on the scale of ‖A‖_F; rotating them wastes O(n) work.
	skip := 1e-3 * jacobiTol * math.Sqrt(total) / float64(n)
	players := newRoundRobin(n)
	pairs := make([]rotation, 0, len(players)/2)
	active := make([]rotation, 0, len(players)/2)
	for sweep := 0; sweep < jacobiMaxSweeps; sweep++ {
		if offDiagSq(w, n) <= target {
			return nil
		}
		for range len(players) - 1 {
			pairs, active = roundRotations(w, n, players, skip, pairs[:0], active[:0])
			applyRound(w, vt, n, pairs, active)
			players.next()
		}
	}
	return fmt.Errorf("SymEig: %d×%d matrix: no convergence after %d Jacobi sweeps (relative off-diagonal norm %.3g)",
		n, n, jacobiMaxSweeps, math.Sqrt(offDiagSq(w, n)/total))
}

// rotation is the Jacobi plane rotation J(p, q, θ) of one pair of a round, with c = cos θ,
// s = sin θ and the diagonal entries app, aqq it produces. A pair whose a_pq is negligible is
// inactive (identity); q ≥ n marks the bye of an odd n.
type rotation struct {
	p, q     int
	c, s     float64
	app, aqq float64
	active   bool
}

// roundRobin is the circle schedule for a round-robin tournament: player 0 stays, the others
// rotate by one place per round; round r pairs slot i with slot m−1−i. m is n rounded up to even;
// a player ≥ n is a bye.
type roundRobin []int

// newRoundRobin returns the schedule's first round for n players.
func newRoundRobin(n int) roundRobin {
	m := max(n+n%2, 2)
	r := make(roundRobin, m)
	for i := range r {
		r[i] = i
	}
	return r
}

// next advances to the following round.
func (r roundRobin) next() {
	last := r[len(r)-1]
	copy(r[2:], r[1:len(r)-1])
	r[1] = last
}

// roundRotations computes from the current w: [n, n] the rotation of every pair of this round
// (Golub & Van Loan, the 2×2 symmetric Schur decomposition: the stable tangent t = sign(τ)/(|τ| + √(1+τ²)) of the
// smaller angle, τ = (a_qq − a_pp)/(2a_pq)); pairs with |a_pq| ≤ skip stay inactive. It returns
// all pairs and, appended to active, the active ones.
func roundRotations(w []float64, n int, players roundRobin, skip float64, pairs, active []rotation) ([]rotation, []rotation) {
	m := len(players)
	for i := range m / 2 {
		p, q := players[i], players[m-1-i]
		if p > q {
			p, q = q, p
		}
		r := rotation{p: p, q: q, c: 1}
		if q < n && math.Abs(w[p*n+q]) > skip {
			apq, app, aqq := w[p*n+q], w[p*n+p], w[q*n+q]
			tau := (aqq - app) / (2 * apq)
			t := 1 / (math.Abs(tau) + math.Sqrt(1+tau*tau))
			if tau < 0 {
				t = -t
			}
			r.c = 1 / math.Sqrt(1+t*t)
			r.s, r.app, r.aqq, r.active = t*r.c, app-t*apq, aqq+t*apq, true
			active = append(active, r)
		}
		pairs = append(pairs, r)
	}
	return pairs, active
}

// applyRound applies a round's disjoint rotations: W ← Jᵀ W J with J their product, and
// Vᵀ ← Jᵀ Vᵀ. Row k of Jᵀ W depends only on the rows of k's own pair, so each pair's two rows are
// rotated (Jᵀ·) and then column-rotated (·J) while in cache, one pass over W; pairs run on
// goroutines when n is large. Each rotated pair's 2×2 block then takes its exact values.
func applyRound(w, vt []float64, n int, pairs, active []rotation) {
	parallelRanges(len(pairs), n >= parallelMinN, func(lo, hi int) {
		for _, r := range pairs[lo:hi] {
			rp := w[r.p*n : r.p*n+n]
			if r.q >= n {
				rotateCols(rp, active)
				continue
			}
			rq := w[r.q*n : r.q*n+n]
			if r.active {
				rotateRows(rp, rq, r.c, r.s)
				if vt != nil {
					rotateRows(vt[r.p*n:r.p*n+n], vt[r.q*n:r.q*n+n], r.c, r.s)
				}
			}
			rotateCols(rp, active)
			rotateCols(rq, active)
			if r.active {
				rp[r.p], rq[r.q], rp[r.q], rq[r.p] = r.app, r.aqq, 0, 0
			}
		}
	})
}

// rotateCols applies the rotations to the entries (p, q) of one row: (x_p, x_q) ← (c·x_p − s·x_q,
// s·x_p + c·x_q).
func rotateCols(row []float64, rots []rotation) {
	for _, r := range rots {
		x, y := row[r.p], row[r.q]
		row[r.p], row[r.q] = r.c*x-r.s*y, r.s*x+r.c*y
	}
}

// parallelMinN is the matrix size from which a Jacobi round is split over goroutines.
const parallelMinN = 128

// parallelRanges calls fn on contiguous chunks [lo, hi) covering [0, n), one per
// runtime.GOMAXPROCS worker when parallel is true (and n allows), else once on [0, n).
func parallelRanges(n int, parallel bool, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if !parallel || workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		lo, hi := i*n/workers, (i+1)*n/workers
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}

// rotateRows sets (x, y) ← (c·x − s·y, s·x + c·y) elementwise; x, y: [n].
func rotateRows(x, y []float64, c, s float64) {
	y = y[:len(x)]
	for k, a := range x {
		b := y[k]
		x[k], y[k] = c*a-s*b, s*a+c*b
	}
}

// sortEig reads the eigenvalues off the diagonal of the diagonalized w: [n, n] and returns them
// ascending with the matching eigenvectors as columns of V: [n, n] (vt holds them as rows).
func sortEig(w, vt []float64, n int) (vals, vecs []float64) {
	d := diag(w, n)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return d[order[i]] < d[order[j]] })
	vals, vecs = make([]float64, n), make([]float64, n*n)
	for j, src := range order {
		vals[j] = d[src]
		row := vt[src*n : src*n+n]
		for i, v := range row {
			vecs[i*n+j] = v
		}
	}
	return vals, vecs
}

// vDiagVt returns V diag(d) Vᵀ for V: [n, n] row-major, d: [n]; the result is exactly symmetric.
func vDiagVt(v, d []float64, n int) []float64 {
	vd := make([]float64, n*n) // row i of V·diag(d)
	for i := range n {
		for j := range n {
			vd[i*n+j] = v[i*n+j] * d[j]
		}
	}
	out := make([]float64, n*n)
	for i := range n {
		for k := i; k < n; k++ {
			x := dot64(vd[i*n:i*n+n], v[k*n:k*n+n])
			out[i*n+k], out[k*n+i] = x, x
		}
	}
	return out
}

// matMul returns A·B for a, b: [n, n] row-major.
func matMul(a, b []float64, n int) []float64 {
	out := make([]float64, n*n)
	for i := range n {
		row := out[i*n : i*n+n]
		for k, aik := range a[i*n : i*n+n] {
			if aik == 0 {
				continue
			}
			bk := b[k*n : k*n+n]
			for j := range row {
				row[j] += aik * bk[j]
			}
		}
	}
	return out
}

// dot64 returns Σ x_i·y_i; x, y: [n].
func dot64(x, y []float64) float64 {
	y = y[:len(x)]
	s := 0.0
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// identity returns the n×n identity, row-major.
func identity(n int) []float64 {
	m := make([]float64, n*n)
	for i := range n {
		m[i*n+i] = 1
	}
	return m
}

// diag returns a copy of the diagonal of w: [n, n].
func diag(w []float64, n int) []float64 {
	d := make([]float64, n)
	for i := range d {
		d[i] = w[i*n+i]
	}
	return d
}

// frobSq returns ‖W‖_F² = Σ w_ij².
func frobSq(w []float64) float64 { return dot64(w, w) }

// offDiagSq returns ‖off(W)‖_F² = Σ_{i≠j} w_ij² for w: [n, n].
func offDiagSq(w []float64, n int) float64 {
	s := 0.0
	for i := range n {
		for j := i + 1; j < n; j++ {
			s += w[i*n+j] * w[i*n+j]
		}
	}
	return 2 * s
}
