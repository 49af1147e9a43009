package eval

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestGaussianBlurIdentities: a blur keeps a constant image, conserves the mass of an interior
// impulse, spreads it with the Gaussian's weights, and σ → larger spreads it further.
func TestGaussianBlurIdentities(t *testing.T) {
	const h, w = 9, 9
	flat := make([]float32, h*w)
	for i := range flat {
		flat[i] = 0.3
	}
	GaussianBlur(flat, 1, h, w, 1, 1)
	for i, v := range flat {
		if math.Abs(float64(v)-0.3) > 1e-6 {
			t.Fatalf("blurred constant image: pixel %d = %g, want 0.3", i, v)
		}
	}
	peak := func(sigma float64) []float32 {
		x := make([]float32, h*w)
		x[4*w+4] = 1
		GaussianBlur(x, 1, h, w, 1, sigma)
		return x
	}
	x := peak(0.5)
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Errorf("blurred impulse sums to %g, want 1", sum)
	}
	// Separable kernel with radius ⌈3·0.5⌉ = 2: weight at offset (1, 0) / centre = exp(−1/(2σ²)).
	if r, want := float64(x[4*w+5]/x[4*w+4]), math.Exp(-1/(2*0.25)); math.Abs(r-want) > 1e-5 {
		t.Errorf("σ 0.5: neighbour/centre = %g, want %g", r, want)
	}
	if x[4*w+4+3] != 0 {
		t.Errorf("σ 0.5 reaches 3 px (radius 2): %g", x[4*w+4+3])
	}
	if y := peak(1); y[4*w+4] >= x[4*w+4] {
		t.Errorf("σ 1 keeps centre %g, not below σ 0.5's %g", y[4*w+4], x[4*w+4])
	}
}

// TestNoiseAndSaltPepper checks the std (in [0, 1] units: 2·std in [−1, 1]), the clipping, and
// the fraction of salt-and-pepper pixels.
func TestNoiseAndSaltPepper(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 200000
	x := make([]float32, n)
	AddGaussianNoise(x, 0.1, rng)
	var s2 float64
	for _, v := range x {
		s2 += float64(v) * float64(v)
	}
	if std := math.Sqrt(s2 / float64(n)); math.Abs(std-0.2) > 0.002 {
		t.Errorf("noise 0.1 on mid-grey: std %g in [−1, 1], want 0.2", std)
	}
	black := make([]float32, 1000)
	for i := range black {
		black[i] = -1
	}
	AddGaussianNoise(black, 0.5, rng)
	for _, v := range black {
		if v < -1 || v > 1 {
			t.Fatalf("noise not clipped: %g", v)
		}
	}
	c := 3
	sp := make([]float32, n*c)
	SaltAndPepper(sp, n, c, 0.01, rng)
	changed, white := 0, 0
	for i := range n {
		if sp[i*c] != 0 {
			changed++
			if sp[i*c] == 1 {
				white++
			}
			if sp[i*c+1] != sp[i*c] || sp[i*c+2] != sp[i*c] {
				t.Fatalf("pixel %d: channels differ %v", i, sp[i*c:i*c+c])
			}
		}
	}
	if f := float64(changed) / float64(n); math.Abs(f-0.01) > 0.001 {
		t.Errorf("salt-and-pepper 1%%: %.4f of the pixels changed", f)
	}
	if f := float64(white) / float64(changed); math.Abs(f-0.5) > 0.05 {
		t.Errorf("salt-and-pepper: %.3f of the changed pixels white, want ≈ 0.5", f)
	}
}

// TestDefectImagesBalanced: class-balanced draws, half the classes, one image per class, and a
// clear error when a class has too few images.
func TestDefectImagesBalanced(t *testing.T) {
	pool := &TestSet{N: 12, H: 1, W: 2, C: 1}
	for i := range pool.N {
		pool.Labels = append(pool.Labels, int32(i%4))
		pool.Images = append(pool.Images, float32(i), float32(-i))
	}
	imgs, labels, err := DefectImages(pool, Defect{Kind: "real"}, 8, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[float32]bool{}
	for i, l := range labels {
		if l != int32(i%4) || int32(int(imgs[2*i])%4) != l || imgs[2*i+1] != -imgs[2*i] || seen[imgs[2*i]] {
			t.Fatalf("real: image %d = %v label %d (labels %v)", i, imgs[2*i:2*i+2], l, labels)
		}
		seen[imgs[2*i]] = true
	}
	_, labels, _ = DefectImages(pool, Defect{Kind: "half_classes"}, 6, 4, 1)
	for _, l := range labels {
		if l > 1 {
			t.Errorf("half the classes of 4 drew class %d", l)
		}
	}
	imgs, labels, _ = DefectImages(pool, Defect{Kind: "collapse"}, 8, 4, 1)
	for i := range labels {
		if imgs[2*i] != imgs[2*(i%4)] {
			t.Errorf("collapse: image %d differs from its class's first", i)
		}
	}
	_, _, err = DefectImages(pool, Defect{Kind: "real"}, 16, 4, 1)
	wantErr(t, "too few images", err, "class", "needs 4")
}

// TestCalibrationOrdering: on a small classifier (digits 0/1) and a small n, the metric ranks clean
// real images below noise std 0.05, and noise 0.05 below noise 0.1; CheckCalibration flags a
// non-monotone row.
func TestCalibrationOrdering(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a classifier")
	}
	b, _, tc, test := smallTestSet(t)
	testStats, err := FitGaussian(test.Features, test.N, FeatureDim)
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	var fids []float64
	for _, d := range []Defect{{Kind: "real"}, {"noise", 0.05}, {"noise", 0.1}} {
		imgs, labels, err := DefectImages(test, d, n, 2, 7) // digits 0 and 1
		if err != nil {
			t.Fatal(err)
		}
		m, err := scoreImages(b, tc, test, testStats, imgs, labels, test.H, test.C, 3)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: FID %.4f precision %.3f recall %.3f", d.Name(), m["fid"], m["precision"], m["recall"])
		fids = append(fids, m["fid"])
	}
	if !(fids[0] < fids[1] && fids[1] < fids[2]) {
		t.Errorf("FIDs clean %.4f, noise 0.05 %.4f, noise 0.1 %.4f: want strictly increasing", fids[0], fids[1], fids[2])
	}
	rows := []CalibrationRow{{Defect: Defect{Kind: "real"}, N: n, FID: 1, Ratio: 1},
		{Defect: Defect{"noise", 0.05}, N: n, FID: 9, Ratio: 9}, {Defect: Defect{"noise", 0.1}, N: n, FID: 8, Ratio: 8}}
	misses := CheckCalibration(rows)
	if len(misses) != 2 || !strings.Contains(misses[0], "target ≥ 20×") || !strings.Contains(misses[1], "not above") {
		t.Errorf("CheckCalibration on a non-monotone noise row: %q", misses)
	}
}
