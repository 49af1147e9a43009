package eval

import (
	"github.com/fewstep/fewstep/data"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/ml/model"
)

// TestProbabilities: on an untrained 3-class classifier (weights drawn from its fixed seed),
// each image's class probabilities sum to 1 and their argmax is the prediction of Features,
// for a batch spanning two classifier calls.
func TestProbabilities(t *testing.T) {
	b := goBackend(t)
	tc := &TrainedClassifier{Classifier: NewClassifier(3), Store: model.NewStore()}
	const n, side, k = featureBatch + 3, 8, 3
	rng := rand.New(rand.NewPCG(3, 4))
	imgs := make([]float32, n*side*side)
	for i := range imgs {
		imgs[i] = float32(2*rng.Float64() - 1)
	}
	probs, err := tc.Probabilities(b, imgs, n, side, side, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, preds, err := tc.Features(b, imgs, n, side, side, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != n*k || len(preds) != n {
		t.Fatalf("got %d probabilities and %d predictions, want %d and %d", len(probs), len(preds), n*k, n)
	}
	for i := range n {
		p := probs[i*k : (i+1)*k]
		sum, best := 0.0, 0
		for j, v := range p {
			if v < 0 || v > 1 {
				t.Fatalf("image %d: p[%d] = %v outside [0, 1]", i, j, v)
			}
			sum += float64(v)
			if v > p[best] {
				best = j
			}
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("image %d: probabilities %v sum to %v", i, p, sum)
		}
		if int32(best) != preds[i] {
			t.Errorf("image %d: argmax of %v is %d, Features predicts %d", i, p, best, preds[i])
		}
	}
	if _, err := tc.Probabilities(b, imgs[:10], n, side, side, 1); err == nil {
		t.Error("wrong image count: no error")
	}
}

func TestClassConfidenceAndMargin(t *testing.T) {
	p := []float32{0.5, 0.2, 0.3}
	for _, tc := range []struct {
		label            int
		confidence, marg float32
	}{{0, 0.5, 0.2}, {1, 0.2, -0.3}, {2, 0.3, -0.2}, {3, 0, -1}, {-1, 0, -1}} {
		if got := ClassConfidence(p, tc.label); got != tc.confidence {
			t.Errorf("ClassConfidence(%v, %d) = %v, want %v", p, tc.label, got, tc.confidence)
		}
		if got := ClassMargin(p, tc.label); math.Abs(float64(got-tc.marg)) > 1e-7 {
			t.Errorf("ClassMargin(%v, %d) = %v, want %v", p, tc.label, got, tc.marg)
		}
	}
	if got := ClassMargin([]float32{1}, 0); got != 1 {
		t.Errorf("ClassMargin of one class = %v, want 1", got)
	}
}

// TestClassifierData: the evaluation's classifier data drops the run's curation filters and the
// noise column, and trains on data.classifier_train when set.
func TestClassifierData(t *testing.T) {
	dc := data.DefaultConfig()
	dc.Train, dc.TopK, dc.TopKPerClass, dc.UseMinScore, dc.MinScore, dc.Noise = "scored.parquet", 200, true, true, 0.5, true
	got := ClassifierData(dc)
	if got.Train != "scored.parquet" || got.TopK != 0 || got.TopKPerClass || got.UseMinScore || got.Noise {
		t.Fatalf("ClassifierData = %+v", got)
	}
	dc.ClassifierTrain = "train.parquet"
	if got := ClassifierData(dc); got.Train != "train.parquet" || got.Test != dc.Test {
		t.Fatalf("with classifier_train: train %q test %q", got.Train, got.Test)
	}
}
