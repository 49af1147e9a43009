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
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/fewstep/fewstep/models"
)

// Classifier architecture constants (part of the cache key: change archVersion with them).
const (
	// archVersion names the architecture in cache keys and files. cnn-v1 (GroupNorm after every
	// conv, global average pooling, SiLU features) was blind to noise and blur; cnn-v3 is below.
	archVersion = "cnn-v3"
	// SemanticDim is the width of the classifier's feature layer (the semantic part of the
	// features; precision and recall use it alone).
	SemanticDim = 128
	// textureGrid: the texture part pools the first conv layer's activations over a
	// textureGrid × textureGrid grid of regions. 1 (the whole image) measured best: a 4×4 grid
	// (512 texture features) raised the train-vs-test floor 10× and hid mode dropping (half the
	// classes 26× the floor), 2×2 still 53×, one region 112× with noise 0.05 at 32×.
	textureGrid = 1
	// textureChannels is the first conv layer's width.
	textureChannels = 32
	// textureWeight is the texture features' mean variance on the test split relative to the
	// semantic features' (1): calibrated on MNIST, where weight 1 put mode dropping (half the
	// classes) at 94× the floor, below its 100× target, and weight 0.5 meets every target.
	textureWeight = 0.5
	// FeatureDim is the width of the metric's features (FID): semantic then texture part.
	FeatureDim     = SemanticDim + textureChannels*textureGrid*textureGrid
	classifierConv = models.ConvAuto
)

// classifierBlocks are the conv blocks of the classifier: output channels and whether a 2×2 max
// pool follows the block's ReLU.
var classifierBlocks = []struct {
	ch   int
	pool bool
}{{textureChannels, false}, {32, true}, {64, false}, {64, true}, {128, true}}

// Feature-scale variables (set by TrainClassifier, see setFeatureScales).
const (
	semScaleVar = "feature_scale/semantic"
	texScaleVar = "feature_scale/texture"
)

// Classifier is a small CNN for one dataset, built to be a feature network for FID that sees what
// people see (noise, speckle, blur, missing modes), not only what the class is:
//   - five 3×3 convs with ReLU and no normalization, 2×2 max pooling after the 2nd, 4th and 5th
//     (32→32→64→64→128 channels, 32×32 → 4×4): no per-image normalization that would rescale away
//     added noise energy;
//   - no global pooling: the 4×4×128 map is flattened, so the features keep where things are (a
//     blurred or speckled stroke moves features at its location instead of averaging out);
//   - the semantic features are a 128-unit linear layer taken before its nonlinearity (ReLU,
//     then a linear layer to the class logits), so Gaussian fits see their full, signed range;
//   - the texture features are the first conv layer's 32 rectified responses averaged over the
//     image: edge and grain energy per filter, which pixel noise, speckle and blur change
//     directly, where the semantic layer, fitted to classes, barely moves (alone it puts noise
//     0.05 at 2.2× the real-data floor; with the texture part, 32×).
//
// The parts are scaled to mean per-feature variance 1 (semantic) and textureWeight (texture) on
// the test split, the reference of every FID. It is trained on clean images only (no noise augmentation that
// would teach invariance to noise). Its weights live under /model of Store. `fewstep eval
// calibrate` measures how its FID responds to known defects.
type Classifier struct {
	NumClasses int
	b          *models.Builder
	// unscaled: Net returns the features without the feature scales (an untrained classifier,
	// before TrainClassifier measures them).
	unscaled bool
}

// NewClassifier returns an untrained classifier for numClasses classes (unscaled features).
func NewClassifier(numClasses int) *Classifier {
	return &Classifier{NumClasses: numClasses, b: &models.Builder{Seed: 1234}, unscaled: true}
}

// Net maps images x: [B, H, W, C] in [-1, 1] (H, W divisible by 8) to the metric's features
// [B, FeatureDim] (semantic [B, SemanticDim] pre-activation, then texture) and logits
// [B, NumClasses].
func (c *Classifier) Net(scope *model.Scope, x *Node) (feats, logits *Node) {
	h := TransposeAllAxes(x, 3, 0, 1, 2) // channels-first [C, B, H, W], as models' layers expect
	var texture *Node
	for i, blk := range classifierBlocks {
		h = c.b.Conv2D(scope.In("block%d", i).In("conv"), h, blk.ch, 3, 1, classifierConv, models.InitFanIn)
		h = activation.Relu(h)
		if i == 0 {
			texture = gridMean(h, textureGrid) // [B, textureChannels·g·g]
		}
		if blk.pool {
			d := h.Shape().Dimensions
			h = ReduceMax(Reshape(h, d[0], d[1], d[2]/2, 2, d[3]/2, 2), 3, 5)
		}
	}
	d := h.Shape().Dimensions // [C, B, H/8, W/8]
	flat := Reshape(TransposeAllAxes(h, 1, 0, 2, 3), d[1], d[0]*d[2]*d[3])
	sem := c.b.Dense(scope.In("features"), flat, SemanticDim, models.InitFanIn)
	logits = c.b.Dense(scope.In("logits"), activation.Relu(sem), c.NumClasses, models.InitFanIn)
	if !c.unscaled {
		g := x.Graph()
		sem = Mul(sem, c.scaleVar(scope, g, semScaleVar))
		texture = Mul(texture, c.scaleVar(scope, g, texScaleVar))
	}
	return Concatenate([]*Node{sem, texture}, -1), logits
}

// scaleVar reads a stored scalar feature scale.
func (c *Classifier) scaleVar(scope *model.Scope, g *Graph, name string) *Node {
	v := scope.Store().GetVariable(model.JoinPath(scope.Scope(), name))
	if v == nil {
		exceptions.Panicf("classifier: feature scale %s missing under %s", name, scope.Scope())
	}
	return v.NodeValue(g)
}

// gridMean averages h: [C, B, H, W] over a g×g grid of regions → [B, C·g·g] (channel-major).
func gridMean(h *Node, g int) *Node {
	d := h.Shape().Dimensions
	m := ReduceMean(Reshape(h, d[0], d[1], g, d[2]/g, g, d[3]/g), 3, 5) // [C, B, g, g]
	return Reshape(TransposeAllAxes(m, 1, 0, 2, 3), d[1], d[0]*g*g)
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

// CalibrationPath is where `fewstep eval calibrate` writes the table of the classifier cached at
// classifierPath: eval/<classifier file name>/calibration.md under the cache root (the parent of
// CacheDir).
func CalibrationPath(classifierPath string) string {
	base := strings.TrimSuffix(filepath.Base(classifierPath), filepath.Ext(classifierPath))
	return filepath.Join(filepath.Dir(CacheDir()), "eval", base, "calibration.md")
}
