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
// penultimate features [n, FeatureDim] and the predicted classes [n].
func (tc *TrainedClassifier) Features(backend compute.Backend, imgs []float32, n, h, w, c int) ([]float32, []int32, error) {
	if len(imgs) != n*h*w*c {
		return nil, nil, fmt.Errorf("classifier features: %d values for %d images of %dx%dx%d", len(imgs), n, h, w, c)
	}
	exec, err := model.NewExec(backend, tc.Store, func(root *model.Scope, x *Node) (*Node, *Node) {
		root.SetTraining(x.Graph(), true) // weights as parameters (gomlx-notes trap 2)
		feats, logits := tc.Net(root.In(trainer.ModelScope), x)
		return feats, ConvertDType(ArgMax(logits, -1), dtypes.Int32)
	})
	if err != nil {
		return nil, nil, err
	}
	per := h * w * c
	feats := make([]float32, 0, n*FeatureDim)
	preds := make([]int32, 0, n)
	for start := 0; start < n; start += featureBatch {
		end := min(start+featureBatch, n)
		f, p, err := exec.Call2(tensors.FromFlatDataAndDimensions(imgs[start*per:end*per], end-start, h, w, c))
		if err != nil {
			return nil, nil, fmt.Errorf("classifier features, images %d–%d: %w", start, end, err)
		}
		feats = append(feats, tensors.MustCopyFlatData[float32](f)...)
		preds = append(preds, tensors.MustCopyFlatData[int32](p)...)
	}
	return feats, preds, nil
}

// TestSet holds a split decoded in memory with its classifier features.
type TestSet struct {
	Images   []float32 // [N, H, W, C] in [-1, 1]
	Labels   []int32
	Features []float32 // [N, FeatureDim]
	Preds    []int32
	N        int
}

// LoadTestSet reads every row of cfg.Test that passes cfg's filters (one epoch of the data
// stream, no augmentation) and computes its features.
func (tc *TrainedClassifier) LoadTestSet(backend compute.Backend, cfg data.Config) (*TestSet, error) {
	if cfg.Test == "" {
		return nil, fmt.Errorf("data.test: no test split configured")
	}
	cfg.Train, cfg.HFlip, cfg.CropScale, cfg.Condition = cfg.Test, false, 1, data.ConditionLabel
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
	ts := &TestSet{Images: b.X, Labels: b.Labels, N: n}
	ts.Features, ts.Preds, err = tc.Features(backend, ts.Images, n, b.H, b.W, b.C)
	return ts, err
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
