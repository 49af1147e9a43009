package eval

// Distribution metrics on feature vectors, computed on the host in float64: FID (Heusel et al.
// 2017) and k-NN precision/recall (Kynkäänniemi et al. 2019). Features arrive as row-major
// float32 [n, d] from a feature network.

import (
	"fmt"
	"math"
	"sync"
)

// Stats is a Gaussian fit N(μ, Σ) of a feature set, the sufficient statistics of FID.
// Mean: [D]; Cov: [D, D] row-major, unbiased (divided by N−1); N is the number of samples fitted.
type Stats struct {
	Mean []float64
	Cov  []float64
	D, N int
}

// covChunk is how many samples FitGaussian centers at once (chunk·d float64 stays in cache).
const covChunk = 64

// FitGaussian returns the mean μ = (1/n) Σ_i x_i and the unbiased covariance
// Σ = (1/(n−1)) Σ_i (x_i − μ)(x_i − μ)ᵀ of feats: [n, d] row-major (two passes, float64
// accumulation, as pytorch-fid's np.mean / np.cov). It needs n ≥ 2 and finite features.
func FitGaussian(feats []float32, n, d int) (Stats, error) {
	if n < 2 || d < 1 {
		return Stats{}, fmt.Errorf("FitGaussian: need n ≥ 2 samples and d ≥ 1 features for an unbiased covariance, got n=%d, d=%d", n, d)
	}
	if len(feats) != n*d {
		return Stats{}, fmt.Errorf("FitGaussian: feats has %d values, want n·d = %d·%d = %d", len(feats), n, d, n*d)
	}
	if err := checkFinite32("FitGaussian: feats", feats, d); err != nil {
		return Stats{}, err
	}
	mean := make([]float64, d)
	for i := range n {
		for j, v := range feats[i*d : i*d+d] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	cov := scatter(feats, mean, n, d)
	for i := range d {
		for j := i; j < d; j++ {
			v := cov[i*d+j] / float64(n-1)
			cov[i*d+j], cov[j*d+i] = v, v
		}
	}
	return Stats{Mean: mean, Cov: cov, D: d, N: n}, nil
}

// scatter returns the upper triangle (j ≥ i) of Σ_s (x_s − μ)(x_s − μ)ᵀ for feats: [n, d], mean: [d];
// result: [d, d] row-major, lower triangle zero. Samples are centered covChunk at a time; output
// rows are split over goroutines, row t paired with row d−1−t so each worker gets equal work.
func scatter(feats []float32, mean []float64, n, d int) []float64 {
	cov := make([]float64, d*d)
	xc := make([]float64, covChunk*d)
	for s0 := 0; s0 < n; s0 += covChunk {
		m := min(covChunk, n-s0)
		for s := range m {
			row := feats[(s0+s)*d : (s0+s)*d+d]
			for j, v := range row {
				xc[s*d+j] = float64(v) - mean[j]
			}
		}
		parallelRanges((d+1)/2, d >= parallelMinN, func(lo, hi int) {
			for t := lo; t < hi; t++ {
				scatterRow(cov, xc, m, d, t)
				if u := d - 1 - t; u != t {
					scatterRow(cov, xc, m, d, u)
				}
			}
		})
	}
	return cov
}

// scatterRow adds Σ_s xc[s][i]·xc[s][j] to cov[i][j] for j ≥ i over the m centered samples xc: [m, d].
func scatterRow(cov, xc []float64, m, d, i int) {
	out := cov[i*d+i : i*d+d]
	for s := range m {
		xs := xc[s*d+i : s*d+d]
		xi := xs[0]
		xs = xs[:len(out)]
		for j, v := range xs {
			out[j] += xi * v
		}
	}
}

// validate checks that s is a consistent, finite Gaussian fit; name labels the errors.
func (s Stats) validate(name string) error {
	if s.D < 1 || len(s.Mean) != s.D || len(s.Cov) != s.D*s.D {
		return fmt.Errorf("%s: stats are inconsistent: D=%d, len(Mean)=%d, len(Cov)=%d (want D and D·D)", name, s.D, len(s.Mean), len(s.Cov))
	}
	for i, v := range s.Mean {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s: Mean[%d] = %g is not finite", name, i, v)
		}
	}
	return nil // Cov is checked (finite, symmetric) by SqrtPSD and symEigvals.
}

// FID returns the Fréchet Inception Distance of Heusel et al. 2017 (arXiv 1706.08500, §3, the
// Fréchet/Wasserstein-2 distance of Dowson & Landau 1982 between N(μ1, Σ1) and N(μ2, Σ2)):
//
//	FID = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}).
//
// Σ1^{1/2} is SqrtPSD (symmetric eigendecomposition); the trace of the outer square root is
// Σ_i √max(λ_i, 0) over the eigenvalues of the symmetric PSD M = Σ1^{1/2} Σ2 Σ1^{1/2}. Negative
// eigenvalues from rounding are clamped to 0, so singular (rank-deficient, n ≤ D) covariances give
// a finite value, never NaN; a result rounded below 0 is returned as 0 (the distance is ≥ 0).
// a, b: Stats of equal D (Mean [D], Cov [D, D]). Cost: O(D³), two D×D eigendecompositions.
func FID(a, b Stats) (float64, error) {
	if err := a.validate("FID: a"); err != nil {
		return 0, err
	}
	if err := b.validate("FID: b"); err != nil {
		return 0, err
	}
	if a.D != b.D {
		return 0, fmt.Errorf("FID: feature dimensions differ: a.D=%d, b.D=%d", a.D, b.D)
	}
	n := a.D
	s1, err := SqrtPSD(a.Cov, n)
	if err != nil {
		return 0, fmt.Errorf("FID: Σ1: %w", err)
	}
	if _, err := symmetrized("FID: Σ2", b.Cov, n); err != nil {
		return 0, err
	}
	vals, err := symEigvals(symProduct(matMul(s1, b.Cov, n), s1, n), n)
	if err != nil {
		return 0, fmt.Errorf("FID: Σ1^½ Σ2 Σ1^½: %w", err)
	}
	trRoot := 0.0
	for _, l := range vals {
		trRoot += math.Sqrt(max(l, 0))
	}
	dmu := 0.0
	for i, m := range a.Mean {
		dmu += (m - b.Mean[i]) * (m - b.Mean[i])
	}
	return max(dmu+trace(a.Cov, n)+trace(b.Cov, n)-2*trRoot, 0), nil
}

// symProduct returns B·S for b: [n, n] and symmetric s: [n, n] when the product is known to be
// symmetric (here Σ1^½ Σ2 · Σ1^½): only the upper triangle is computed and mirrored, so the result
// is exactly symmetric. Entry (i, j) = b_i · s_j, rows of S being its columns.
func symProduct(b, s []float64, n int) []float64 {
	out := make([]float64, n*n)
	parallelRanges(n, n >= parallelMinN, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for j := i; j < n; j++ {
				out[i*n+j] = dot64(b[i*n:i*n+n], s[j*n:j*n+n])
			}
		}
	})
	for i := range n {
		for j := i + 1; j < n; j++ {
			out[j*n+i] = out[i*n+j]
		}
	}
	return out
}

// trace returns Σ_i a_ii of a: [n, n].
func trace(a []float64, n int) float64 {
	t := 0.0
	for i := range n {
		t += a[i*n+i]
	}
	return t
}

// checkFinite32 returns an error naming the row and column of the first NaN or ±Inf in x: [·, d].
func checkFinite32(name string, x []float32, d int) error {
	for i, v := range x {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s: non-finite value %g at row %d, feature %d", name, f, i/d, i%d)
		}
	}
	return nil
}

// PrecisionRecall returns the improved precision and recall of Kynkäänniemi et al. 2019 (arXiv
// 1904.06991, §2, eqs. 1–2). Each set's manifold is the union of balls around its samples, of
// radius the distance to the sample's k-th nearest neighbour within its own set (the sample itself
// excluded); distances are Euclidean in feature space and a sample on a ball's boundary is inside.
//
//	precision = |{g ∈ gen : ∃ r ∈ real, ‖g − r‖ ≤ NN_k(r)}| / nGen
//	recall    = |{r ∈ real : ∃ g ∈ gen, ‖r − g‖ ≤ NN_k(g)}| / nReal
//
// real: [nReal, d], gen: [nGen, d] row-major; k ≥ 1 (the paper uses k = 3) and both sets need more
// than k samples. Time O((nReal + nGen)²·d) on runtime.GOMAXPROCS goroutines; memory O((nReal +
// nGen)·(d + k)): distance rows are streamed, never stored.
func PrecisionRecall(real, gen []float32, nReal, nGen, d, k int) (precision, recall float64, err error) {
	if d < 1 || k < 1 {
		return 0, 0, fmt.Errorf("PrecisionRecall: need d ≥ 1 and k ≥ 1, got d=%d, k=%d", d, k)
	}
	if nReal <= k || nGen <= k {
		return 0, 0, fmt.Errorf("PrecisionRecall: k=%d nearest neighbours need more than k samples per set, got nReal=%d, nGen=%d", k, nReal, nGen)
	}
	r, err := newFeatureSet("real", real, nReal, d)
	if err != nil {
		return 0, 0, fmt.Errorf("PrecisionRecall: %w", err)
	}
	g, err := newFeatureSet("gen", gen, nGen, d)
	if err != nil {
		return 0, 0, fmt.Errorf("PrecisionRecall: %w", err)
	}
	genIn, realIn := manifoldMembership(r, g, knnRadii(r, k), knnRadii(g, k))
	return fraction(genIn), fraction(realIn), nil
}

// featureSet holds n feature vectors x: [n, d] as float64 with their squared norms sq: [n].
type featureSet struct {
	x    []float64
	sq   []float64
	n, d int
}

// newFeatureSet converts feats: [n, d] float32, checking its size and finiteness.
func newFeatureSet(name string, feats []float32, n, d int) (*featureSet, error) {
	if len(feats) != n*d {
		return nil, fmt.Errorf("%s features have %d values, want n·d = %d·%d = %d", name, len(feats), n, d, n*d)
	}
	if err := checkFinite32(name+" features", feats, d); err != nil {
		return nil, err
	}
	s := &featureSet{x: make([]float64, n*d), sq: make([]float64, n), n: n, d: d}
	for i, v := range feats {
		s.x[i] = float64(v)
	}
	for i := range n {
		s.sq[i] = dot64(s.row(i), s.row(i))
	}
	return s, nil
}

// row returns sample i: [d].
func (s *featureSet) row(i int) []float64 { return s.x[i*s.d : i*s.d+s.d] }

// knnRadii returns, for each sample of s, the squared distance to its k-th nearest neighbour in s
// other than itself: [n]. Each goroutine keeps a sorted list of the k smallest per row: O(n·k).
func knnRadii(s *featureSet, k int) []float64 {
	best := make([]float64, s.n*k) // best[i*k : i*k+k]: ascending k smallest squared distances.
	for i := range best {
		best[i] = math.Inf(1)
	}
	parallelRanges(s.n, true, func(lo, hi int) {
		scanPairs(s, s, lo, hi, func(i, j int, d2 float64) {
			if i != j {
				insertSmallest(best[i*k:i*k+k], d2)
			}
		})
	})
	radii := make([]float64, s.n)
	for i := range radii {
		radii[i] = best[i*k+k-1]
	}
	return radii
}

// insertSmallest inserts v into the ascending list top if smaller than its last (largest) entry.
func insertSmallest(top []float64, v float64) {
	j := len(top) - 1
	if v >= top[j] {
		return
	}
	for ; j > 0 && top[j-1] > v; j-- {
		top[j] = top[j-1]
	}
	top[j] = v
}

// manifoldMembership returns genIn[j] (gen sample j is within the radius of some real sample) and
// realIn[i] (real sample i is within the radius of some gen sample) in one pass over the real×gen
// distances; rReal: [nReal], rGen: [nGen] are squared k-NN radii. Goroutines split the real rows,
// each with its own genIn, OR-ed at the end.
func manifoldMembership(r, g *featureSet, rReal, rGen []float64) (genIn, realIn []bool) {
	realIn = make([]bool, r.n)
	genIn = make([]bool, g.n)
	var mu sync.Mutex
	parallelRanges(r.n, true, func(lo, hi int) {
		in := make([]bool, g.n)
		scanPairs(r, g, lo, hi, func(i, j int, d2 float64) {
			if d2 <= rReal[i] {
				in[j] = true
			}
			if d2 <= rGen[j] {
				realIn[i] = true
			}
		})
		mu.Lock()
		defer mu.Unlock()
		for j, v := range in {
			genIn[j] = genIn[j] || v
		}
	})
	return genIn, realIn
}

// scanPairs calls visit(i, j, ‖q_i − r_j‖²) for query rows i in [lo, hi) of q and every row j of r,
// with ‖q_i − r_j‖² = ‖q_i‖² + ‖r_j‖² − 2 q_i·r_j clamped at 0. Queries go four at a time through
// dot4 so each reference row is loaded once per four dot products. Every dot product, like every
// squared norm, accumulates in float64 in index order, so identical rows give exactly 0.
func scanPairs(q, r *featureSet, lo, hi int, visit func(i, j int, d2 float64)) {
	i := lo
	for ; i+4 <= hi; i += 4 {
		q0, q1, q2, q3 := q.row(i), q.row(i+1), q.row(i+2), q.row(i+3)
		for j := range r.n {
			s0, s1, s2, s3 := dot4(q0, q1, q2, q3, r.row(j))
			visit(i, j, sqDist(q.sq[i], r.sq[j], s0))
			visit(i+1, j, sqDist(q.sq[i+1], r.sq[j], s1))
			visit(i+2, j, sqDist(q.sq[i+2], r.sq[j], s2))
			visit(i+3, j, sqDist(q.sq[i+3], r.sq[j], s3))
		}
	}
	for ; i < hi; i++ {
		for j := range r.n {
			visit(i, j, sqDist(q.sq[i], r.sq[j], dot64(q.row(i), r.row(j))))
		}
	}
}

// sqDist returns max(a² + b² − 2a·b, 0) from the squared norms and the dot product.
func sqDist(aa, bb, ab float64) float64 { return max(aa+bb-2*ab, 0) }

// dot4 returns (q0·r, q1·r, q2·r, q3·r); all [d]. Each sum runs in index order like dot64.
func dot4(q0, q1, q2, q3, r []float64) (s0, s1, s2, s3 float64) {
	q0, q1, q2, q3 = q0[:len(r)], q1[:len(r)], q2[:len(r)], q3[:len(r)]
	for i, x := range r {
		s0 += q0[i] * x
		s1 += q1[i] * x
		s2 += q2[i] * x
		s3 += q3[i] * x
	}
	return s0, s1, s2, s3
}

// fraction returns the share of true entries in in.
func fraction(in []bool) float64 {
	c := 0
	for _, v := range in {
		if v {
			c++
		}
	}
	return float64(c) / float64(len(in))
}
