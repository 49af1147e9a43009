package eval

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/trainer"
)

// ClassifierOptions control TrainClassifier.
type ClassifierOptions struct {
	Data      data.Config // Train and Test splits, image size, channels, classes
	Epochs    int         // passes over the training split (default 3)
	BatchSize int         // default 128
	LR        float64     // peak AdamW learning rate (default 2e-3)
	Seed      uint64
	Out       io.Writer // progress lines (nil: silent)
}

// TrainedClassifier is a classifier with its weights and its test accuracy.
type TrainedClassifier struct {
	*Classifier
	Store        *model.Store
	TestAccuracy float64
	Path         string
}

// Classifier metadata keys in the cache file.
const (
	metaArch     = "fewstep.classifier.arch"
	metaAccuracy = "fewstep.classifier.test_accuracy"
	metaClasses  = "fewstep.classifier.num_classes"
	metaTrain    = "fewstep.classifier.train"
)

// ClassifierFor returns the cached classifier of a dataset (see CachePath), training and
// caching it first when there is none; while another process trains it, it waits for its file.
func ClassifierFor(backend compute.Backend, cfg data.Config, out io.Writer) (*TrainedClassifier, error) {
	cfg = ClassifierData(cfg)
	path, err := CachePath(cfg.Train, cfg.ImageSize, cfg.Channels, cfg.NumClasses)
	if err != nil {
		return nil, err
	}
	if tc, err := LoadClassifier(path); err == nil {
		return tc, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	release, ready, err := lockCache(path, out)
	if err != nil {
		return nil, err
	}
	if ready {
		return LoadClassifier(path)
	}
	defer release()
	if tc, err := LoadClassifier(path); err == nil { // written just before the lock was taken
		return tc, nil
	}
	if out != nil {
		fmt.Fprintf(out, "no cached classifier for %s: training one (cached as %s)\n", cfg.Train, path)
	}
	return TrainClassifier(backend, ClassifierOptions{Data: cfg, Out: out})
}

// ClassifierData is the data config of a run's feature classifier and reference test split:
// data.classifier_train (default data.train) and data.test, without the curation filters (top_k,
// min_score), which select training rows of the run, not of the evaluation, and without the noise
// column of noise–image pairs.
func ClassifierData(cfg data.Config) data.Config {
	if cfg.ClassifierTrain != "" {
		cfg.Train = cfg.ClassifierTrain
	}
	cfg.TopK, cfg.TopKPerClass, cfg.UseMinScore = 0, false, false
	cfg.Noise = false // noise–image pairs carry images the classifier reads like any others
	return cfg
}

// TrainClassifier trains the classifier on opts.Data.Train with cross-entropy and AdamW, measures
// its accuracy on opts.Data.Test, and saves it atomically to CachePath.
func TrainClassifier(backend compute.Backend, opts ClassifierOptions) (*TrainedClassifier, error) {
	if opts.Epochs <= 0 {
		opts.Epochs = 3
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 128
	}
	if opts.LR <= 0 {
		opts.LR = 2e-3
	}
	cfg := opts.Data
	cfg.Condition, cfg.HFlip, cfg.CropScale = data.ConditionLabel, false, 1
	stream, err := data.Open(cfg, opts.BatchSize, opts.Seed)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	tc := &TrainedClassifier{Classifier: NewClassifier(cfg.NumClasses), Store: model.NewStore()}
	tcfg := trainer.DefaultConfig()
	tcfg.Steps = opts.Epochs * int(stream.Stats().Rows) / opts.BatchSize
	tcfg.BatchSize, tcfg.LR, tcfg.WarmupSteps, tcfg.MinLRRatio = opts.BatchSize, opts.LR, 100, 0.02
	step, err := trainer.NewLossStep(backend, tc.Store, tcfg, func(root *model.Scope, in []*Node) *Node {
		_, logits := tc.Net(root.In(trainer.ModelScope), in[0])
		return ReduceAllMean(CrossEntropy(logits, in[1]))
	})
	if err != nil {
		return nil, err
	}
	if err := tc.fit(stream, step, tcfg.Steps, opts.BatchSize, opts.Out); err != nil {
		return nil, err
	}
	test, err := tc.setFeatureScales(backend, cfg)
	if err != nil {
		return nil, err
	}
	tc.TestAccuracy = ClassAccuracy(test.Preds, test.Labels) // the predictions do not depend on the scales
	if opts.Out != nil {
		fmt.Fprintf(opts.Out, "classifier test accuracy on %s: %.2f%%\n", cfg.Test, 100*tc.TestAccuracy)
	}
	tc.Path, err = CachePath(cfg.Train, cfg.ImageSize, cfg.Channels, cfg.NumClasses)
	if err != nil {
		return nil, err
	}
	return tc, tc.save(cfg.Train)
}

// fit runs the optimizer steps, printing the loss every 200 steps.
func (tc *TrainedClassifier) fit(stream *data.Stream, step *trainer.Step, steps, batchSize int, out io.Writer) error {
	b := data.NewBatch(stream.Info(), data.Config{Condition: data.ConditionLabel}, batchSize)
	t0 := time.Now()
	for i := range steps {
		if err := stream.Next(b); err != nil {
			return err
		}
		res, err := step.RunInputs(i, tensors.FromFlatDataAndDimensions(b.X, b.B, b.H, b.W, b.C),
			tensors.FromFlatDataAndDimensions(b.Labels, b.B))
		if err != nil {
			return err
		}
		if !res.Applied {
			return fmt.Errorf("classifier training: non-finite step %d (loss %g)", i+1, res.Loss)
		}
		if out != nil && ((i+1)%200 == 0 || i+1 == steps) {
			fmt.Fprintf(out, "classifier step %d/%d  loss %.4f  (%s)\n", i+1, steps, res.Loss, time.Since(t0).Round(time.Second))
		}
	}
	return nil
}

// save writes the weights and metadata to tc.Path atomically.
func (tc *TrainedClassifier) save(train string) error {
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return err
	}
	var ts []checkpoints.NamedTensor
	for v := range tc.Store.IterVariables() {
		if !strings.HasPrefix(v.Path(), "/"+trainer.ModelScope+"/") {
			continue // optimizer moments and EMA are not needed for inference
		}
		val, err := v.Value()
		if err != nil {
			return err
		}
		ts = append(ts, checkpoints.NamedTensor{Name: strings.TrimPrefix(v.Path(), "/"), Tensor: val})
	}
	meta := map[string]string{metaArch: archVersion, metaAccuracy: strconv.FormatFloat(tc.TestAccuracy, 'g', -1, 64),
		metaClasses: strconv.Itoa(tc.NumClasses), metaTrain: train}
	return checkpoints.WriteSafetensors(tc.Path, ts, meta)
}

// LoadClassifier reads a cached classifier (os.ErrNotExist-wrapping error when absent).
func LoadClassifier(path string) (*TrainedClassifier, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	ts, meta, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	if meta[metaArch] != archVersion {
		return nil, fmt.Errorf("%s: classifier architecture %q, this fewstep uses %q (delete the file to retrain)", path, meta[metaArch], archVersion)
	}
	k, err1 := strconv.Atoi(meta[metaClasses])
	acc, err2 := strconv.ParseFloat(meta[metaAccuracy], 64)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%s: classifier metadata: %w", path, err)
	}
	tc := &TrainedClassifier{Classifier: NewClassifier(k), Store: model.NewStore(), TestAccuracy: acc, Path: path}
	tc.b.Frozen, tc.unscaled = true, false // the file holds the feature scales
	for name, t := range ts {
		v, err := tc.Store.CreateVariable("/"+name, t)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		v.Trainable = false
	}
	return tc, nil
}

// setFeatureScales measures the unscaled semantic and texture features on the test split (the
// reference of every FID) and stores each part's scale, so that the semantic features have mean
// variance 1 there and the texture features textureWeight, then switches Net to the scaled
// features. It returns the test set it measured (unscaled features, predictions and labels).
func (tc *TrainedClassifier) setFeatureScales(backend compute.Backend, cfg data.Config) (*TestSet, error) {
	tc.unscaled = true
	test, err := tc.LoadTestSet(backend, cfg)
	if err != nil {
		return nil, err
	}
	sum, sq := make([]float64, FeatureDim), make([]float64, FeatureDim)
	for i, v := range test.Features {
		sum[i%FeatureDim] += float64(v)
		sq[i%FeatureDim] += float64(v) * float64(v)
	}
	m := float64(test.N)
	partScale := func(lo, hi int, weight float64) (float32, error) {
		var tr float64
		for j := lo; j < hi; j++ {
			mu := sum[j] / m
			tr += sq[j]/m - mu*mu
		}
		if !(tr > 0) || math.IsInf(tr, 0) {
			return 0, fmt.Errorf("classifier: features %d..%d have total variance %g on the test split", lo, hi-1, tr)
		}
		return float32(math.Sqrt(weight * float64(hi-lo) / tr)), nil
	}
	semScale, err1 := partScale(0, SemanticDim, 1)
	texScale, err2 := partScale(SemanticDim, FeatureDim, textureWeight)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	for name, v := range map[string]float32{semScaleVar: semScale, texScaleVar: texScale} {
		variable, err := tc.Store.CreateVariable("/"+trainer.ModelScope+"/"+name, tensors.FromScalar(v))
		if err != nil {
			return nil, err
		}
		variable.Trainable = false
	}
	tc.unscaled = false
	return test, nil
}
