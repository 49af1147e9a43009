package eval

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// gaussianFeats returns n samples of x = μ + L z, z ~ N(0, I_d), as float32 [n, d]; l: [d, d].
func gaussianFeats(rng *rand.Rand, n, d int, mu, l []float64) []float32 {
	out := make([]float32, n*d)
	z := make([]float64, d)
	for i := range n {
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		for j := range d {
			out[i*d+j] = float32(mu[j] + dot64(l[j*d:j*d+d], z))
		}
	}
	return out
}

// randMat returns a d×d matrix with N(0, scale²) entries.
func randMat(rng *rand.Rand, d int, scale float64) []float64 {
	m := make([]float64, d*d)
	for i := range m {
		m[i] = scale * rng.NormFloat64()
	}
	return m
}

// wantErr fails unless err mentions every fragment.
func wantErr(t *testing.T, what string, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one mentioning %q", what, fragments)
		return
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("%s: error %q does not mention %q", what, err, f)
		}
	}
}

func TestFitGaussianByHand(t *testing.T) {
	// Samples (1,2), (3,6), (5,4): μ = (3,4); centered (−2,−2), (0,2), (2,0); Σ = [[4,2],[2,4]].
	s, err := FitGaussian([]float32{1, 2, 3, 6, 5, 4}, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.D != 2 || s.N != 3 {
		t.Errorf("D, N = %d, %d, want 2, 3", s.D, s.N)
	}
	if maxAbsDiff(s.Mean, []float64{3, 4}) != 0 || maxAbsDiff(s.Cov, []float64{4, 2, 2, 4}) != 0 {
		t.Errorf("Mean = %v, Cov = %v, want [3 4], [4 2 2 4]", s.Mean, s.Cov)
	}
}

func TestFitGaussianMatchesNaive(t *testing.T) {
	// d = 130 ≥ parallelMinN exercises the goroutine split, n = 150 spans three chunks.
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ n, d int }{{150, 130}, {7, 5}, {2, 1}} {
		feats := make([]float32, c.n*c.d)
		for i := range feats {
			feats[i] = float32(3 + rng.NormFloat64())
		}
		s, err := FitGaussian(feats, c.n, c.d)
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.d {
			for j := range c.d {
				mi, mj, v := 0.0, 0.0, 0.0
				for r := range c.n {
					mi += float64(feats[r*c.d+i]) / float64(c.n)
					mj += float64(feats[r*c.d+j]) / float64(c.n)
				}
				for r := range c.n {
					v += (float64(feats[r*c.d+i]) - mi) * (float64(feats[r*c.d+j]) - mj)
				}
				if got, want := s.Cov[i*c.d+j], v/float64(c.n-1); math.Abs(got-want) > 1e-12 {
					t.Fatalf("n=%d d=%d: Cov[%d][%d] = %.15g, want %.15g", c.n, c.d, i, j, got, want)
				}
			}
		}
	}
}

func TestFitGaussianErrors(t *testing.T) {
	_, err := FitGaussian([]float32{1, 2}, 1, 2)
	wantErr(t, "n=1", err, "n ≥ 2", "n=1", "d=2")
	_, err = FitGaussian(make([]float32, 10), 3, 4)
	wantErr(t, "size", err, "10 values", "3·4 = 12")
	_, err = FitGaussian([]float32{1, 2, float32(math.Inf(1)), 4}, 2, 2)
	wantErr(t, "inf", err, "row 1, feature 0")
}

// statsOf builds Stats from a mean and covariance.
func statsOf(mu, cov []float64) Stats {
	return Stats{Mean: mu, Cov: cov, D: len(mu), N: 1000}
}

// fid calls FID and fails the test on error.
func fid(t *testing.T, a, b Stats) float64 {
	t.Helper()
	f, err := FID(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFIDOfItself(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	d := 32
	mu := make([]float64, d)
	feats := gaussianFeats(rng, 2000, d, mu, randMat(rng, d, 0.3))
	s, err := FitGaussian(feats, 2000, d)
	if err != nil {
		t.Fatal(err)
	}
	f := fid(t, s, s)
	if tr := trace(s.Cov, d); math.Abs(f) > 1e-8*tr {
		t.Errorf("FID(s, s) = %g, want |FID| < 1e-8·Tr Σ = %g", f, 1e-8*tr)
	}
}

func TestFIDCommutingClosedForm(t *testing.T) {
	// Σ1 = Q diag(λ1) Qᵀ, Σ2 = Q diag(λ2) Qᵀ commute: FID = ‖μ1 − μ2‖² + Σ_i (√λ1_i − √λ2_i)².
	rng := rand.New(rand.NewPCG(15, 16))
	d := 12
	_, q, err := SymEig(randSym(rng, d), d)
	if err != nil {
		t.Fatal(err)
	}
	l1, l2 := make([]float64, d), make([]float64, d)
	mu1, mu2 := make([]float64, d), make([]float64, d)
	want := 0.0
	for i := range d {
		l1[i], l2[i] = 0.1+rng.Float64()*4, 0.1+rng.Float64()*4
		mu1[i], mu2[i] = rng.NormFloat64(), rng.NormFloat64()
		want += (mu1[i]-mu2[i])*(mu1[i]-mu2[i]) + (math.Sqrt(l1[i])-math.Sqrt(l2[i]))*(math.Sqrt(l1[i])-math.Sqrt(l2[i]))
	}
	diag1, diag2 := make([]float64, d*d), make([]float64, d*d)
	for i := range d {
		diag1[i*d+i], diag2[i*d+i] = l1[i], l2[i]
	}
	for _, c := range []struct {
		name   string
		s1, s2 []float64
	}{{"diagonal", diag1, diag2}, {"rotated", vDiagVt(q, l1, d), vDiagVt(q, l2, d)}} {
		if got := fid(t, statsOf(mu1, c.s1), statsOf(mu2, c.s2)); math.Abs(got-want) > 1e-10*want {
			t.Errorf("%s: FID = %.15g, want %.15g", c.name, got, want)
		}
	}
}

func TestFIDNonCommuting2x2(t *testing.T) {
	// For 2×2 PSD M with eigenvalues m1, m2: (Tr M^½)² = m1 + m2 + 2√(m1 m2) = Tr M + 2√det M, and
	// M = Σ1^½ Σ2 Σ1^½ has Tr M = Tr(Σ1 Σ2), det M = det Σ1 · det Σ2. Σ1 = [[2,1],[1,2]],
	// Σ2 = [[1,0],[0,3]]: Tr(Σ1Σ2) = 8, det = 3·3, so Tr M^½ = √14; Δμ = (1, −2).
	a := statsOf([]float64{1, 0}, []float64{2, 1, 1, 2})
	b := statsOf([]float64{0, 2}, []float64{1, 0, 0, 3})
	want := 5 + 4 + 4 - 2*math.Sqrt(14)
	if got := fid(t, a, b); math.Abs(got-want) > 1e-14*want+1e-15 {
		t.Errorf("FID = %.17g, want %.17g", got, want)
	}
	if got := fid(t, b, a); math.Abs(got-want) > 1e-14*want+1e-15 {
		t.Errorf("FID(b, a) = %.17g, want %.17g", got, want)
	}
}

func TestFIDSymmetricRandom(t *testing.T) {
	// FID(a, b) computes Tr(Σ1^½ Σ2 Σ1^½)^½, FID(b, a) Tr(Σ2^½ Σ1 Σ2^½)^½: both are the nuclear norm
	// of Σ1^½ Σ2^½, by different matrices, so agreement is an independent check.
	rng := rand.New(rand.NewPCG(17, 18))
	d := 130 // ≥ parallelMinN: the goroutine paths of SymEig and symProduct
	a := statsOf(make([]float64, d), randPSD(rng, d, d+5))
	b := statsOf(make([]float64, d), randPSD(rng, d, 2*d))
	ab, ba := fid(t, a, b), fid(t, b, a)
	if math.Abs(ab-ba) > 1e-9*ab {
		t.Errorf("FID(a, b) = %.15g, FID(b, a) = %.15g", ab, ba)
	}
}

func TestFIDSingular(t *testing.T) {
	// Rank one: Σ1 = u uᵀ, Σ2 = v vᵀ give Σ1^½ = u uᵀ/‖u‖, M = (u·v)² u uᵀ/‖u‖², Tr M^½ = |u·v|,
	// so FID = ‖Δμ‖² + ‖u‖² + ‖v‖² − 2|u·v| = ‖Δμ‖² + ‖u ∓ v‖².
	u, v := []float64{1, 2, 0, -1, 3}, []float64{2, -1, 1, 1, 1}
	d := len(u)
	outer := func(x []float64) []float64 {
		m := make([]float64, d*d)
		for i := range d {
			for j := range d {
				m[i*d+j] = x[i] * x[j]
			}
		}
		return m
	}
	mu1, mu2 := []float64{0, 0, 0, 0, 1}, []float64{1, 0, 0, 0, 0}
	uv := dot64(u, v) // −2
	want := 2 + dot64(u, u) + dot64(v, v) - 2*math.Abs(uv)
	got := fid(t, statsOf(mu1, outer(u)), statsOf(mu2, outer(v)))
	if math.Abs(got-want) > 1e-6*want {
		t.Errorf("rank-1 FID = %.15g, want %.15g", got, want)
	}
	// Zero covariance: FID = ‖Δμ‖² + Tr Σ2.
	if got := fid(t, statsOf(mu1, make([]float64, d*d)), statsOf(mu2, outer(v))); math.Abs(got-(2+dot64(v, v))) > 1e-12 {
		t.Errorf("zero-Σ1 FID = %.15g, want %g", got, 2+dot64(v, v))
	}
	// Fewer samples than features (n = 10 < d = 48): rank-9 covariances, finite and ≥ 0.
	rng := rand.New(rand.NewPCG(19, 20))
	n, dd := 10, 48
	s1, err := FitGaussian(gaussianFeats(rng, n, dd, make([]float64, dd), identity(dd)), n, dd)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := FitGaussian(gaussianFeats(rng, n, dd, make([]float64, dd), identity(dd)), n, dd)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []float64{fid(t, s1, s2), fid(t, s2, s1), fid(t, s1, s1)} {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			t.Errorf("singular FID = %g, want finite ≥ 0", f)
		}
	}
	if self := fid(t, s1, s1); self > 1e-5*trace(s1.Cov, dd) {
		t.Errorf("singular FID(s, s) = %g, want ≈ 0 (Tr Σ = %g)", self, trace(s1.Cov, dd))
	}
}

func TestFIDGrowsWithNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	n, d := 3000, 16
	mu := make([]float64, d)
	for i := range mu {
		mu[i] = rng.NormFloat64()
	}
	base := gaussianFeats(rng, n, d, mu, randMat(rng, d, 0.4))
	ref, err := FitGaussian(base, n, d)
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]float64, len(base))
	for i := range noise {
		noise[i] = rng.NormFloat64()
	}
	prev := -1.0
	for _, sigma := range []float64{0, 0.05, 0.1, 0.2, 0.5, 1, 2} {
		noisy := make([]float32, len(base))
		for i, v := range base {
			noisy[i] = v + float32(sigma*noise[i])
		}
		s, err := FitGaussian(noisy, n, d)
		if err != nil {
			t.Fatal(err)
		}
		f := fid(t, ref, s)
		t.Logf("σ = %4.2f: FID = %.6g", sigma, f)
		if sigma == 0 && f > 1e-8*trace(ref.Cov, d) {
			t.Errorf("σ = 0: FID = %g, want ≈ 0", f)
		}
		if f <= prev {
			t.Errorf("σ = %g: FID = %g not above %g of the previous σ", sigma, f, prev)
		}
		prev = f
	}
}

func TestFIDErrors(t *testing.T) {
	a := statsOf([]float64{0, 0}, []float64{1, 0, 0, 1})
	b := statsOf([]float64{0, 0, 0}, identity(3))
	_, err := FID(a, b)
	wantErr(t, "D", err, "a.D=2", "b.D=3")
	_, err = FID(a, Stats{Mean: []float64{0, 0}, Cov: []float64{1, 0, 0}, D: 2})
	wantErr(t, "cov size", err, "FID: b", "len(Cov)=3")
	_, err = FID(a, statsOf([]float64{0, 0}, []float64{1, 5, 0, 1}))
	wantErr(t, "asymmetric", err, "Σ2", "not symmetric")
	_, err = FID(statsOf([]float64{math.NaN(), 0}, identity(2)), a)
	wantErr(t, "nan", err, "FID: a", "Mean[0]")
}

// toF32 converts float64 values to float32.
func toF32(x ...float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// pr calls PrecisionRecall and fails the test on error.
func pr(t *testing.T, real, gen []float32, nReal, nGen, d, k int) (float64, float64) {
	t.Helper()
	p, r, err := PrecisionRecall(real, gen, nReal, nGen, d, k)
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

func TestPrecisionRecallSelf(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, c := range []struct{ n, d, k int }{{203, 8, 3}, {50, 64, 1}, {9, 3, 5}} {
		x := gaussianFeats(rng, c.n, c.d, make([]float64, c.d), identity(c.d))
		if p, r := pr(t, x, x, c.n, c.n, c.d, c.k); p != 1 || r != 1 {
			t.Errorf("n=%d d=%d k=%d: precision, recall = %g, %g, want 1, 1", c.n, c.d, c.k, p, r)
		}
	}
}

func TestPrecisionRecallSeparated(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	d := 16
	far := make([]float64, d)
	for i := range far {
		far[i] = 50
	}
	real := gaussianFeats(rng, 120, d, make([]float64, d), identity(d))
	gen := gaussianFeats(rng, 90, d, far, identity(d))
	if p, r := pr(t, real, gen, 120, 90, d, 3); p != 0 || r != 0 {
		t.Errorf("precision, recall = %g, %g, want 0, 0", p, r)
	}
}

func TestPrecisionRecallHalfOverlap(t *testing.T) {
	// Real: (i, 0), i = 0..9, k = 1 → every radius 1. Gen: (j, ½), j = 0..4, radius 1, and five
	// points far away. Gen j is ½ from real j: precision 5/10. Real i is within 1 of (j, ½) only
	// for i = j (√(1 + ¼) > 1): recall 5/10.
	var real, gen []float64
	for i := range 10 {
		real = append(real, float64(i), 0)
	}
	for j := range 5 {
		gen = append(gen, float64(j), 0.5)
	}
	for j := range 5 {
		gen = append(gen, 1000+10*float64(j), 0)
	}
	if p, r := pr(t, toF32(real...), toF32(gen...), 10, 10, 2, 1); p != 0.5 || r != 0.5 {
		t.Errorf("precision, recall = %g, %g, want 0.5, 0.5", p, r)
	}
	// Gen covers the first half of real exactly: precision 1; recall counts real 0..9 (distance 0)
	// and real 10, exactly at radius 1 from gen 9 (ties are inside): 11/20.
	real = real[:0]
	for i := range 20 {
		real = append(real, float64(i), 0)
	}
	if p, r := pr(t, toF32(real...), toF32(real[:20]...), 20, 10, 2, 1); p != 1 || r != 0.55 {
		t.Errorf("half cover: precision, recall = %g, %g, want 1, 0.55", p, r)
	}
	// With k = 3 the radii are 2 inside a set and 3 at its ends (gen 9's neighbours are 8, 7, 6):
	// recall adds real 10, 11 and 12, the last exactly at gen 9's radius 3: 13/20.
	if p, r := pr(t, toF32(real...), toF32(real[:20]...), 20, 10, 2, 3); p != 1 || r != 0.65 {
		t.Errorf("half cover k=3: precision, recall = %g, %g, want 1, 0.65", p, r)
	}
}

// naivePR is PrecisionRecall by definition: explicit differences, sorted neighbour lists.
func naivePR(real, gen []float32, nReal, nGen, d, k int) (float64, float64) {
	dist := func(a, b []float32, i, j int) float64 {
		s := 0.0
		for c := range d {
			x := float64(a[i*d+c]) - float64(b[j*d+c])
			s += x * x
		}
		return math.Sqrt(s)
	}
	radii := func(x []float32, n int) []float64 {
		r := make([]float64, n)
		for i := range n {
			var ds []float64
			for j := range n {
				if j != i {
					ds = append(ds, dist(x, x, i, j))
				}
			}
			for a := range ds { // selection of the k smallest
				for b := a + 1; b < len(ds); b++ {
					if ds[b] < ds[a] {
						ds[a], ds[b] = ds[b], ds[a]
					}
				}
			}
			r[i] = ds[k-1]
		}
		return r
	}
	rr, rg := radii(real, nReal), radii(gen, nGen)
	p, r := 0, 0
	for j := range nGen {
		for i := range nReal {
			if dist(gen, real, j, i) <= rr[i] {
				p++
				break
			}
		}
	}
	for i := range nReal {
		for j := range nGen {
			if dist(real, gen, i, j) <= rg[j] {
				r++
				break
			}
		}
	}
	return float64(p) / float64(nGen), float64(r) / float64(nReal)
}

func TestPrecisionRecallMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	d := 7
	shift := make([]float64, d)
	shift[0] = 1.5
	for _, c := range []struct{ nReal, nGen, k int }{{57, 43, 3}, {30, 61, 1}, {23, 9, 4}} {
		real := gaussianFeats(rng, c.nReal, d, make([]float64, d), identity(d))
		gen := gaussianFeats(rng, c.nGen, d, shift, identity(d))
		p, r := pr(t, real, gen, c.nReal, c.nGen, d, c.k)
		wp, wr := naivePR(real, gen, c.nReal, c.nGen, d, c.k)
		if p != wp || r != wr {
			t.Errorf("%+v: precision, recall = %g, %g, want %g, %g", c, p, r, wp, wr)
		}
		if p == 0 || p == 1 || r == 0 || r == 1 {
			t.Errorf("%+v: degenerate case (%g, %g); pick another shift", c, p, r)
		}
	}
}

func TestPrecisionRecallErrors(t *testing.T) {
	x := make([]float32, 40)                                          // 10 samples of d = 4
	_, _, err := PrecisionRecall(x, make([]float32, 45), 10, 9, 4, 3) // gen has d = 5
	wantErr(t, "gen d", err, "gen features have 45 values", "9·4 = 36")
	_, _, err = PrecisionRecall(x, make([]float32, 50), 10, 10, 5, 3) // real has d = 4
	wantErr(t, "real d", err, "real features have 40 values", "10·5 = 50")
	_, _, err = PrecisionRecall(x[:12], x, 3, 10, 4, 3)
	wantErr(t, "few real", err, "k=3", "nReal=3")
	_, _, err = PrecisionRecall(x, x[:8], 10, 2, 4, 3)
	wantErr(t, "few gen", err, "nGen=2")
	_, _, err = PrecisionRecall(x, x, 10, 10, 4, 0)
	wantErr(t, "k=0", err, "k=0")
	bad := make([]float32, 40)
	bad[21] = float32(math.NaN())
	_, _, err = PrecisionRecall(x, bad, 10, 10, 4, 3)
	wantErr(t, "nan", err, "gen features", "row 5, feature 1")
}

func TestPrecisionRecallTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing sanity skipped in -short")
	}
	rng := rand.New(rand.NewPCG(29, 30))
	n, d := 5000, 128
	shift := make([]float64, d)
	shift[0] = 1
	real := gaussianFeats(rng, n, d, make([]float64, d), identity(d))
	gen := gaussianFeats(rng, n, d, shift, identity(d))
	start := time.Now()
	p, r := pr(t, real, gen, n, n, d, 3)
	t.Logf("PrecisionRecall(%d×%d, d=%d, k=3): %v (precision %.4f, recall %.4f)", n, n, d, time.Since(start), p, r)
}

// TestFIDMatchesFloat64Reference scores two sets of Gaussian samples (float32 features, d = 32,
// non-commuting covariances) with FitGaussian + FID and with an independent float64 reference:
// naive two-pass mean and covariance, and Tr √(Σ1Σ2) by the Denman–Beavers iteration
// (Y ← (Y + Z⁻¹)/2, Z ← (Z + Y⁻¹)/2 → √A) with Gauss–Jordan inverses. They must agree to 1e-6
// relative; both must be near the population value ‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2√(Σ1Σ2)).
func TestFIDMatchesFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	n, d := 6000, 32
	mu1, mu2 := make([]float64, d), make([]float64, d)
	for i := range d {
		mu1[i], mu2[i] = rng.NormFloat64(), 0.5*rng.NormFloat64()
	}
	l1, l2 := randMat(rng, d, 0.25), randMat(rng, d, 0.2)
	a, b := gaussianFeats(rng, n, d, mu1, l1), gaussianFeats(rng, n, d, mu2, l2)
	sa, err := FitGaussian(a, n, d)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := FitGaussian(b, n, d)
	if err != nil {
		t.Fatal(err)
	}
	got := fid(t, sa, sb)

	m1, c1 := refMeanCov(a, n, d)
	m2, c2 := refMeanCov(b, n, d)
	want := refFID(t, m1, c1, m2, c2, d)
	if math.Abs(got-want) > 1e-6*want {
		t.Errorf("FID %.10g, float64 reference %.10g (rel. diff %.2g)", got, want, math.Abs(got-want)/want)
	}
	pop := refFID(t, mu1, matMulT(l1, l1, d), mu2, matMulT(l2, l2, d), d)
	t.Logf("FID %.6f, reference %.6f, population %.6f", got, want, pop)
	if math.Abs(got-pop) > 0.03*pop {
		t.Errorf("FID %.6f far from the population value %.6f", got, pop)
	}
}

// refMeanCov: the mean and the unbiased covariance (divisor n − 1) of x: [n, d], in float64.
func refMeanCov(x []float32, n, d int) ([]float64, []float64) {
	mu := make([]float64, d)
	for i := range n {
		for j := range d {
			mu[j] += float64(x[i*d+j])
		}
	}
	for j := range mu {
		mu[j] /= float64(n)
	}
	cov := make([]float64, d*d)
	for i := range n {
		for j := range d {
			dj := float64(x[i*d+j]) - mu[j]
			for k := range d {
				cov[j*d+k] += dj * (float64(x[i*d+k]) - mu[k])
			}
		}
	}
	for i := range cov {
		cov[i] /= float64(n - 1)
	}
	return mu, cov
}

// matMulT returns A·Bᵀ for d×d row-major matrices.
func matMulT(a, b []float64, d int) []float64 {
	out := make([]float64, d*d)
	for i := range d {
		for j := range d {
			out[i*d+j] = dot64(a[i*d:i*d+d], b[j*d:j*d+d])
		}
	}
	return out
}

func refMatMul(a, b []float64, d int) []float64 {
	out := make([]float64, d*d)
	for i := range d {
		for k := range d {
			for j := range d {
				out[i*d+j] += a[i*d+k] * b[k*d+j]
			}
		}
	}
	return out
}

// refInverse inverts a d×d matrix by Gauss–Jordan elimination with partial pivoting.
func refInverse(t *testing.T, a []float64, d int) []float64 {
	m := append([]float64(nil), a...)
	inv := make([]float64, d*d)
	for i := range d {
		inv[i*d+i] = 1
	}
	for c := range d {
		p := c
		for r := c + 1; r < d; r++ {
			if math.Abs(m[r*d+c]) > math.Abs(m[p*d+c]) {
				p = r
			}
		}
		if m[p*d+c] == 0 {
			t.Fatal("reference inverse: singular matrix")
		}
		for k := range d {
			m[c*d+k], m[p*d+k] = m[p*d+k], m[c*d+k]
			inv[c*d+k], inv[p*d+k] = inv[p*d+k], inv[c*d+k]
		}
		piv := m[c*d+c]
		for k := range d {
			m[c*d+k] /= piv
			inv[c*d+k] /= piv
		}
		for r := range d {
			if f := m[r*d+c]; r != c && f != 0 {
				for k := range d {
					m[r*d+k] -= f * m[c*d+k]
					inv[r*d+k] -= f * inv[c*d+k]
				}
			}
		}
	}
	return inv
}

// refFID is ‖μ1−μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr √(Σ1Σ2), the square root by Denman–Beavers.
func refFID(t *testing.T, m1, c1, m2, c2 []float64, d int) float64 {
	y := refMatMul(c1, c2, d)
	z := make([]float64, d*d)
	for i := range d {
		z[i*d+i] = 1
	}
	for range 60 {
		yi, zi := refInverse(t, y, d), refInverse(t, z, d)
		for i := range y {
			y[i], z[i] = (y[i]+zi[i])/2, (z[i]+yi[i])/2
		}
	}
	var f float64
	for i := range d {
		f += (m1[i]-m2[i])*(m1[i]-m2[i]) + c1[i*d+i] + c2[i*d+i] - 2*y[i*d+i]
	}
	return f
}
