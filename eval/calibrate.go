package eval

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute"
)

// Defect is one row of the metric's calibration table: a known, visible defect applied to real
// images, scored like generated samples. Strength is in the defect's own unit (see Kind).
type Defect struct {
	// Kind is one of:
	//   - "real": n training images, unchanged (the real-data floor: train vs test);
	//   - "noise": + Gaussian pixel noise of std Strength in [0, 1] pixel units (2·Strength in the
	//     model's [−1, 1]), clipped to the valid range, as a PNG would store it;
	//   - "salt_pepper": a fraction Strength of the pixels set to black or white (half each);
	//   - "blur": a Gaussian blur of std Strength pixels (separable, radius ⌈3σ⌉, edges clamped);
	//   - "half_classes": n images of the first ⌈K/2⌉ classes only (mode dropping);
	//   - "collapse": one image repeated for every sample of its class (mode collapse).
	Kind     string
	Strength float64
}

// Name is the defect's row label in the table.
func (d Defect) Name() string {
	switch d.Kind {
	case "real":
		return "real train images (the floor)"
	case "noise":
		return fmt.Sprintf("+ Gaussian noise std %g", d.Strength)
	case "salt_pepper":
		return fmt.Sprintf("+ salt-and-pepper %g%%", 100*d.Strength)
	case "blur":
		return fmt.Sprintf("Gaussian blur σ %g px", d.Strength)
	case "half_classes":
		return "half the classes only (mode dropping)"
	case "collapse":
		return "one image repeated per class (collapse)"
	}
	return d.Kind
}

// CalibrationDefects are the rows of `fewstep eval calibrate`, the floor first.
func CalibrationDefects() []Defect {
	return []Defect{{Kind: "real"},
		{"noise", 0.02}, {"noise", 0.05}, {"noise", 0.1}, {"noise", 0.2},
		{"salt_pepper", 0.01}, {"blur", 0.5}, {"blur", 1},
		{Kind: "half_classes"}, {Kind: "collapse"}}
}

// CalibrationRow is the metric's response to one defect at one n.
type CalibrationRow struct {
	Defect    Defect
	N         int
	FID       float64
	Ratio     float64 // FID / the floor's FID at the same n
	Precision float64
	Recall    float64
	ClassAcc  float64
}

// Calibrate scores, for every n in ns and every defect, n class-balanced images drawn from pool
// (the training split: real images from other writers or photos than the test split) with the
// defect applied,
// exactly as `fewstep eval` scores generated images: FID against the Gaussian fit of the whole
// test split, k-NN precision/recall against the test features, class accuracy against the
// images' labels. The same images (by seed) underlie every defect at one n.
func Calibrate(backend compute.Backend, tc *TrainedClassifier, test, pool *TestSet, ns []int, seed uint64, out io.Writer) ([]CalibrationRow, error) {
	testStats, err := FitGaussian(test.Features, test.N, FeatureDim)
	if err != nil {
		return nil, err
	}
	var rows []CalibrationRow
	for _, n := range ns {
		var floor float64
		for _, d := range CalibrationDefects() {
			imgs, labels, err := DefectImages(pool, d, n, tc.NumClasses, seed)
			if err != nil {
				return nil, err
			}
			m, err := scoreImages(backend, tc, test, testStats, imgs, labels, pool.H, pool.C, 3)
			if err != nil {
				return nil, fmt.Errorf("calibration %s, n=%d: %w", d.Name(), n, err)
			}
			if d.Kind == "real" {
				floor = m["fid"]
			}
			r := CalibrationRow{Defect: d, N: n, FID: m["fid"], Ratio: m["fid"] / floor, Precision: m["precision"],
				Recall: m["recall"], ClassAcc: m["class_accuracy"]}
			rows = append(rows, r)
			if out != nil {
				fmt.Fprintf(out, "n=%d  %-42s FID %10.4f  (%.1f× floor)  precision %.3f  recall %.3f  class acc %.4f\n",
					n, d.Name(), r.FID, r.Ratio, r.Precision, r.Recall, r.ClassAcc)
			}
		}
	}
	return rows, nil
}

// DefectImages draws n images from pool, balanced over the classes the defect keeps (image i has
// class i mod K', K' = K or ⌈K/2⌉; within a class the images are a seeded random choice without
// replacement), and applies the defect. Images: [n, H, W, C] in [−1, 1]; labels: [n].
func DefectImages(pool *TestSet, d Defect, n, numClasses int, seed uint64) ([]float32, []int32, error) {
	k := numClasses
	if d.Kind == "half_classes" {
		k = (numClasses + 1) / 2
	}
	byClass := make([][]int, numClasses)
	for i, l := range pool.Labels {
		if l >= 0 && int(l) < numClasses {
			byClass[l] = append(byClass[l], i)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0xca11b))
	for c := range byClass {
		rng.Shuffle(len(byClass[c]), func(i, j int) { byClass[c][i], byClass[c][j] = byClass[c][j], byClass[c][i] })
	}
	per := pool.H * pool.W * pool.C
	imgs := make([]float32, n*per)
	labels := make([]int32, n)
	for i := range n {
		c := i % k
		j := i / k
		if d.Kind == "collapse" {
			j = 0
		}
		if j >= len(byClass[c]) {
			return nil, nil, fmt.Errorf("calibration: class %d has %d images in the pool, %s at n=%d needs %d", c, len(byClass[c]), d.Name(), n, j+1)
		}
		src := byClass[c][j]
		copy(imgs[i*per:(i+1)*per], pool.Images[src*per:(src+1)*per])
		labels[i] = int32(c)
	}
	noise := rand.New(rand.NewPCG(seed, 0x5eed))
	switch d.Kind {
	case "noise":
		AddGaussianNoise(imgs, d.Strength, noise)
	case "salt_pepper":
		SaltAndPepper(imgs, n*pool.H*pool.W, pool.C, d.Strength, noise)
	case "blur":
		GaussianBlur(imgs, n, pool.H, pool.W, pool.C, d.Strength)
	case "real", "half_classes", "collapse":
	default:
		return nil, nil, fmt.Errorf("calibration: unknown defect %q", d.Kind)
	}
	return imgs, labels, nil
}

// AddGaussianNoise adds noise of std std in [0, 1] pixel units to x in [−1, 1] (2·std there) and
// clips to [−1, 1], in place.
func AddGaussianNoise(x []float32, std float64, rng *rand.Rand) {
	for i, v := range x {
		x[i] = clip1(v + float32(2*std*rng.NormFloat64()))
	}
}

// SaltAndPepper sets a fraction p of the pixels of x: [pixels, c] to −1 or +1 (all channels
// alike, black or white with equal probability), in place.
func SaltAndPepper(x []float32, pixels, c int, p float64, rng *rand.Rand) {
	for i := range pixels {
		if rng.Float64() >= p {
			continue
		}
		v := float32(-1)
		if rng.IntN(2) == 1 {
			v = 1
		}
		for ch := range c {
			x[i*c+ch] = v
		}
	}
}

// GaussianBlur blurs x: [n, h, w, c] in place with a normalized Gaussian of std sigma pixels,
// separably (rows, then columns), radius ⌈3σ⌉, edge pixels repeated beyond the border.
func GaussianBlur(x []float32, n, h, w, c int, sigma float64) {
	r := int(math.Ceil(3 * sigma))
	kernel := make([]float64, 2*r+1)
	var sum float64
	for i := range kernel {
		d := float64(i - r)
		kernel[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += kernel[i]
	}
	for i := range kernel {
		kernel[i] /= sum
	}
	tmp := make([]float32, h*w*c)
	for img := range n {
		im := x[img*h*w*c : (img+1)*h*w*c]
		blurAxis(im, tmp, h, w, c, kernel, false)
		blurAxis(tmp, im, h, w, c, kernel, true)
	}
}

// blurAxis convolves src: [h, w, c] with kernel along x (vertical false) or y into dst.
func blurAxis(src, dst []float32, h, w, c int, kernel []float64, vertical bool) {
	r := len(kernel) / 2
	for y := range h {
		for xx := range w {
			for ch := range c {
				var acc float64
				for k, kv := range kernel {
					yy, xs := y, xx
					if vertical {
						yy = min(max(y+k-r, 0), h-1)
					} else {
						xs = min(max(xx+k-r, 0), w-1)
					}
					acc += kv * float64(src[(yy*w+xs)*c+ch])
				}
				dst[(y*w+xx)*c+ch] = float32(acc)
			}
		}
	}
}

func clip1(v float32) float32 { return min(max(v, -1), 1) }

// CalibrationTargets are part 11's targets for the metric, as multiples of the floor at the same n.
var CalibrationTargets = map[Defect]float64{{"noise", 0.05}: 5, {"noise", 0.1}: 20, {"blur", 0.5}: 20, {Kind: "half_classes"}: 100}

// CheckCalibration lists the targets the rows miss: each CalibrationTargets multiple, and every
// noise and blur row monotone in its strength (at each n). Empty: all met.
func CheckCalibration(rows []CalibrationRow) []string {
	var misses []string
	last := map[string]CalibrationRow{}
	for _, r := range rows {
		if want, ok := CalibrationTargets[r.Defect]; ok && r.Ratio < want {
			misses = append(misses, fmt.Sprintf("n=%d %s: %.1f× the floor, target ≥ %g×", r.N, r.Defect.Name(), r.Ratio, want))
		}
		key := fmt.Sprintf("%d/%s", r.N, r.Defect.Kind)
		if prev, ok := last[key]; ok && (r.Defect.Kind == "noise" || r.Defect.Kind == "blur") && r.FID <= prev.FID {
			misses = append(misses, fmt.Sprintf("n=%d %s: FID %.4f is not above %s's %.4f", r.N, r.Defect.Name(), r.FID, prev.Defect.Name(), prev.FID))
		}
		last[key] = r
	}
	return misses
}

// CalibrationMarkdown renders the rows as one Markdown table per n, with the classifier and the
// data named, followed by the targets' status.
func CalibrationMarkdown(rows []CalibrationRow, tc *TrainedClassifier, train, test string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Calibration of `fewstep eval`'s metric\n\nfeature classifier `%s` (%s, test accuracy %.2f%%); candidates drawn from `%s`, class-balanced; reference: every image of `%s`.\n",
		tc.Path, archVersion, 100*tc.TestAccuracy, train, test)
	n := -1
	for _, r := range rows {
		if r.N != n {
			n = r.N
			fmt.Fprintf(&b, "\n**n = %d**\n\n| images | FID | × floor | precision | recall | class acc |\n|---|---:|---:|---:|---:|---:|\n", n)
		}
		fmt.Fprintf(&b, "| %s | %.4f | %.1f | %.3f | %.3f | %.4f |\n", r.Defect.Name(), r.FID, r.Ratio, r.Precision, r.Recall, r.ClassAcc)
	}
	if misses := CheckCalibration(rows); len(misses) == 0 {
		fmt.Fprintf(&b, "\nTargets (noise 0.05 ≥ 5×, noise 0.1 ≥ 20×, blur σ 0.5 ≥ 20×, half the classes ≥ 100× the floor; noise and blur monotone): all met.\n")
	} else {
		fmt.Fprintf(&b, "\nTargets missed:\n- %s\n", strings.Join(misses, "\n- "))
	}
	return b.String()
}

// ScoreSet scores images [n, H, W, C] (labels: [n]) against the whole test split as `fewstep eval`
// scores samples: fid, precision, recall (k = 3), class_accuracy, confidence.
func ScoreSet(backend compute.Backend, tc *TrainedClassifier, test *TestSet, imgs []float32, labels []int32) (map[string]float64, error) {
	testStats, err := FitGaussian(test.Features, test.N, FeatureDim)
	if err != nil {
		return nil, err
	}
	return scoreImages(backend, tc, test, testStats, imgs, labels, test.H, test.C, 3)
}
