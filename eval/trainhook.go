package eval

import (
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// StoreEvaluator returns trainer.Options.Evaluate for a run: every call generates n images (image i
// from seed i, classes balanced) with the run's sample config from the weights in the training
// store and measures them against the held-out split: fid, precision, recall, class_accuracy (and
// confidence, the mean classifier probability of each image's class). The sampler is built on the
// first call and reads the store's current weights on every call.
func StoreEvaluator(backend compute.Backend, job trainer.Job, tc *TrainedClassifier, test *TestSet, n int) (func(int, *model.Store) (map[string]float64, error), error) {
	testStats, err := FitGaussian(test.Features, test.N, FeatureDim)
	if err != nil {
		return nil, err
	}
	var smp *sampling.Sampler
	return func(_ int, store *model.Store) (map[string]float64, error) {
		if smp == nil {
			if smp, err = trainer.GridSampler(backend, store, job); err != nil {
				return nil, err
			}
		}
		h, _, c := job.ImageShape()
		seeds, classes := balanced(n, job.Model.NumClasses, 0)
		cond := classes
		if job.Model.Text.On() { // text models: each class's name as the prompt
			if cond, classes, err = promptCond(job.Model, PromptsNames, classes); err != nil {
				return nil, err
			}
		}
		imgs, err := job.Images(smp, seeds, cond)
		if err != nil {
			return nil, err
		}
		return scoreImages(backend, tc, test, testStats, imgs, classes, h, c, 3)
	}, nil
}

// scoreImages measures generated images [n, h, h, c] of the given classes against the test split
// (precision/recall with k nearest neighbours): fid, precision, recall, class_accuracy, confidence.
func scoreImages(backend compute.Backend, tc *TrainedClassifier, test *TestSet, testStats Stats, imgs []float32, classes []int32, h, c, k int) (map[string]float64, error) {
	n := len(classes)
	feats, preds, err := tc.Features(backend, imgs, n, h, h, c)
	if err != nil {
		return nil, err
	}
	gen, err := FitGaussian(feats, n, FeatureDim)
	if err != nil {
		return nil, err
	}
	fid, err := FID(gen, testStats)
	if err != nil {
		return nil, err
	}
	p, r, err := PrecisionRecall(SemanticPart(test.Features, test.N), SemanticPart(feats, n), test.N, n, SemanticDim, k)
	if err != nil {
		return nil, err
	}
	conf, err := meanConfidence(backend, tc, imgs, classes, h, c)
	if err != nil {
		return nil, err
	}
	return map[string]float64{"fid": fid, "precision": p, "recall": r, "class_accuracy": ClassAccuracy(preds, classes), "confidence": conf}, nil
}

// SemanticPart copies the semantic features [n, SemanticDim] out of the metric's features
// [n, FeatureDim] (precision and recall are k-NN in the semantic space).
func SemanticPart(feats []float32, n int) []float32 {
	out := make([]float32, 0, n*SemanticDim)
	for i := range n {
		out = append(out, feats[i*FeatureDim:i*FeatureDim+SemanticDim]...)
	}
	return out
}
