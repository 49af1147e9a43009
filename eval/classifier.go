package eval

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// Classifier architecture constants (part of the cache key: change archVersion with them).
const (
	archVersion = "cnn-v1"
	// FeatureDim is the width of the penultimate layer, the feature space of FID and precision/recall.
	FeatureDim     = 128
	classifierGN   = 8
	classifierConv = models.ConvAuto
)

// Classifier is a small CNN for one dataset: five 3×3 conv blocks (GroupNorm, SiLU; strides
// 1, 2, 1, 2, 2) to 4×4, global average pooling, a 128-unit SiLU layer (the features) and a
// linear layer to the class logits. Its weights live under /model of Store.
type Classifier struct {
	NumClasses int
	b          *models.Builder
}

// NewClassifier returns an untrained classifier for numClasses classes.
func NewClassifier(numClasses int) *Classifier {
	return &Classifier{NumClasses: numClasses, b: &models.Builder{Seed: 1234}}
}

// Net maps images x: [B, H, W, C] in [-1, 1] (H, W divisible by 8) to features [B, FeatureDim]
// and logits [B, NumClasses].
func (c *Classifier) Net(scope *model.Scope, x *Node) (feats, logits *Node) {
	h := TransposeAllAxes(x, 3, 0, 1, 2) // channels-first [C, B, H, W], as models' layers expect
	for i, blk := range []struct{ ch, stride int }{{32, 1}, {64, 2}, {64, 1}, {128, 2}, {128, 2}} {
		s := scope.In("block%d", i)
		h = c.b.Conv2D(s.In("conv"), h, blk.ch, 3, blk.stride, classifierConv, models.InitFanIn)
		h = models.SiLU(c.b.GroupNorm(s.In("norm"), h, classifierGN))
	}
	pooled := Transpose(ReduceMean(h, 2, 3), 0, 1) // [B, 128]
	feats = models.SiLU(c.b.Dense(scope.In("hidden"), pooled, FeatureDim, models.InitFanIn))
	logits = c.b.Dense(scope.In("logits"), feats, c.NumClasses, models.InitFanIn)
	return feats, logits
}

// CrossEntropy is the per-example softmax cross-entropy. logits: [B, K], labels: [B] int32 → [B].
func CrossEntropy(logits, labels *Node) *Node {
	k := logits.Shape().Dimensions[1]
	return Neg(ReduceSum(Mul(LogSoftmax(logits, -1), OneHot(labels, k, dtypes.Float32)), -1))
}

// CacheDir is where trained classifiers are kept: $FEWSTEP_CACHE_DIR/classifiers, else
// $XDG_CACHE_HOME/fewstep/classifiers, else ~/.cache/fewstep/classifiers.
func CacheDir() string {
	if d := os.Getenv("FEWSTEP_CACHE_DIR"); d != "" {
		return filepath.Join(d, "classifiers")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "fewstep", "classifiers")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "fewstep-classifiers")
	}
	return filepath.Join(home, ".cache", "fewstep", "classifiers")
}

// CachePath is the cache file of the classifier for a training set: the file name holds the
// data's base name and a hash of the data files (names and sizes), the input shape, the class
// count and the architecture version.
func CachePath(train string, imageSize, channels, numClasses int) (string, error) {
	files, err := filepath.Glob(train)
	if err != nil || len(files) == 0 {
		files = strings.Split(train, ",")
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%d|%d|", archVersion, imageSize, channels, numClasses)
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("classifier cache key: %w", err)
		}
		fmt.Fprintf(h, "%s:%d|", filepath.Base(f), st.Size())
	}
	base := strings.TrimSuffix(filepath.Base(files[0]), filepath.Ext(files[0]))
	return filepath.Join(CacheDir(), fmt.Sprintf("%s-%s.safetensors", base, hex.EncodeToString(h.Sum(nil))[:12])), nil
}
