package eval

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/trainer"
)

// featureBatch is the number of images per classifier call.
const featureBatch = 500

// Features runs the classifier on images [n, h, w, c] (values in [-1, 1]) and returns the
// metric's features [n, FeatureDim] (semantic, then texture; see Classifier) and the predicted
// classes [n].
func (tc *TrainedClassifier) Features(backend compute.Backend, imgs []float32, n, h, w, c int) ([]float32, []int32, error) {
	exec, err := model.NewExec(backend, tc.Store, func(root *model.Scope, x *Node) (*Node, *Node) {
		root.SetTraining(x.Graph(), true) // weights as parameters (gomlx-notes trap 2)
		feats, logits := tc.Net(root.In(trainer.ModelScope), x)
		return feats, ConvertDType(ArgMax(logits, -1), dtypes.Int32)
	})
	if err != nil {
		return nil, nil, err
	}
	feats := make([]float32, 0, n*FeatureDim)
	preds := make([]int32, 0, n)
	err = forEachBatch(imgs, n, h, w, c, "features", func(x *tensors.Tensor) error {
		f, p, err := exec.Call2(x)
		if err == nil {
			feats = append(feats, tensors.MustCopyFlatData[float32](f)...)
			preds = append(preds, tensors.MustCopyFlatData[int32](p)...)
		}
		return err
	})
	return feats, preds, err
}

// Probabilities runs the classifier on images [n, h, w, c] (values in [-1, 1]) and returns
// the class probabilities softmax(logits) [n, NumClasses]: each row sums to 1 and its argmax
// is the prediction of Features. Data curation scores images with them (ClassConfidence,
// ClassMargin; Emu quality tuning, arXiv 2309.15807, keeps a small high-quality subset).
func (tc *TrainedClassifier) Probabilities(backend compute.Backend, imgs []float32, n, h, w, c int) ([]float32, error) {
	exec, err := model.NewExec(backend, tc.Store, func(root *model.Scope, x *Node) *Node {
		root.SetTraining(x.Graph(), true) // weights as parameters (gomlx-notes trap 2)
		_, logits := tc.Net(root.In(trainer.ModelScope), x)
		return Softmax(logits, -1)
	})
	if err != nil {
		return nil, err
	}
	probs := make([]float32, 0, n*tc.NumClasses)
	err = forEachBatch(imgs, n, h, w, c, "probabilities", func(x *tensors.Tensor) error {
		p, err := exec.Call1(x)
		if err == nil {
			probs = append(probs, tensors.MustCopyFlatData[float32](p)...)
		}
		return err
	})
	return probs, err
}

// forEachBatch checks that imgs holds n images [h, w, c] and calls fn on consecutive batches
// of at most featureBatch images, x: [b, h, w, c], in order.
func forEachBatch(imgs []float32, n, h, w, c int, what string, fn func(x *tensors.Tensor) error) error {
	if len(imgs) != n*h*w*c {
		return fmt.Errorf("classifier %s: %d values for %d images of %dx%dx%d", what, len(imgs), n, h, w, c)
	}
	per := h * w * c
	for start := 0; start < n; start += featureBatch {
		end := min(start+featureBatch, n)
		if err := fn(tensors.FromFlatDataAndDimensions(imgs[start*per:end*per], end-start, h, w, c)); err != nil {
			return fmt.Errorf("classifier %s, images %d–%d: %w", what, start, end, err)
		}
	}
	return nil
}

// ClassConfidence is the probability of class label under one image's class probabilities
// p: [K] (a row of Probabilities): how prototypical the image is of its labelled class.
// It is 0 for a label outside [0, K).
func ClassConfidence(p []float32, label int) float32 {
	if label < 0 || label >= len(p) {
		return 0
	}
	return p[label]
}

// ClassMargin is p(label) − max_{j≠label} p(j) for one image's class probabilities p: [K],
// in [-1, 1]: positive when the classifier picks the labelled class, larger the more clearly.
// It is -1 for a label outside [0, K) and p(label) when K = 1.
func ClassMargin(p []float32, label int) float32 {
	if label < 0 || label >= len(p) {
		return -1
	}
	var other float32
	for j, v := range p {
		if j != label {
			other = max(other, v)
		}
	}
	return p[label] - other
}

// TestSet holds a split decoded in memory with its classifier features.
type TestSet struct {
	Images   []float32 // [N, H, W, C] in [-1, 1]
	Labels   []int32
	Features []float32 // [N, FeatureDim]
	Preds    []int32
	N        int
	H, W, C  int
}

// LoadTestSet reads every row of cfg.Test that passes cfg's filters (one epoch of the data
// stream, no augmentation) and computes its features.
func (tc *TrainedClassifier) LoadTestSet(backend compute.Backend, cfg data.Config) (*TestSet, error) {
	if cfg.Test == "" {
		return nil, fmt.Errorf("data.test: no test split configured")
	}
	ts, err := LoadSplit(cfg, cfg.Test)
	if err != nil {
		return nil, err
	}
	ts.Features, ts.Preds, err = tc.Features(backend, ts.Images, ts.N, ts.H, ts.W, ts.C)
	return ts, err
}

// LoadSplit decodes every row of the Parquet file(s) at path that passes cfg's filters (one
// epoch, no augmentation) into a TestSet without features: images [N, H, W, C] and labels.
func LoadSplit(cfg data.Config, path string) (*TestSet, error) {
	cfg.Train, cfg.HFlip, cfg.CropScale, cfg.Condition, cfg.Noise = path, false, 1, data.ConditionLabel, false
	probe, err := data.Open(cfg, 1, 0)
	if err != nil {
		return nil, err
	}
	n := int(probe.Stats().Rows)
	probe.Close()
	stream, err := data.Open(cfg, n, 0) // one batch = one epoch: every kept row exactly once
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	b := data.NewBatch(stream.Info(), cfg, n)
	if err := stream.Next(b); err != nil {
		return nil, err
	}
	return &TestSet{Images: b.X, Labels: b.Labels, N: n, H: b.H, W: b.W, C: b.C}, nil
}

// Accuracy is the classifier's accuracy on cfg.Test.
func (tc *TrainedClassifier) Accuracy(backend compute.Backend, cfg data.Config) (float64, error) {
	ts, err := tc.LoadTestSet(backend, cfg)
	if err != nil {
		return 0, err
	}
	return ClassAccuracy(ts.Preds, ts.Labels), nil
}

// ClassAccuracy is the fraction of predictions equal to the wanted classes.
func ClassAccuracy(preds, want []int32) float64 {
	if len(preds) == 0 || len(preds) != len(want) {
		return 0
	}
	hits := 0
	for i := range preds {
		if preds[i] == want[i] {
			hits++
		}
	}
	return float64(hits) / float64(len(preds))
}
