package data

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
)

// Conditioning modes of Config.Condition: what a Batch carries besides the images.
const (
	ConditionLabel         = "label"          // Batch.Labels (class index)
	ConditionCaption       = "caption"        // Batch.Tokens, caption token ids (MetaVocab)
	ConditionTextEmbedding = "text_embedding" // Batch.TextEmbedding, the text_embedding column
	ConditionNone          = "none"           // images only (Labels are still filled if present)
)

// Bad-row policies of Config.BadRows: what a row whose image does not decode does.
const (
	BadRowsSkip = "skip" // skip it, count it (Stats.Skipped) and report file and row (Stats.BadRows)
	BadRowsFail = "fail" // Next returns an error naming file and row
)

// Config is the `data:` section of a run config (YAML keys in mapstructure tags).
// Defaults live only in DefaultConfig.
type Config struct {
	// Train names the training Parquet files: a comma-separated list of paths or globs
	// ("data/emoji-*.parquet,extra.parquet"); every glob must match at least one file.
	Train string `mapstructure:"train"`
	// Test is the Parquet file with the test split (optional).
	Test string `mapstructure:"test"`
	// ClassifierTrain is the training split of the evaluation's feature classifier (`fewstep eval`,
	// trainer.eval_every); empty: Train. A scored or curated copy of a dataset names the original
	// here, so the classifier (cached per training set) is shared and trained on all of it.
	ClassifierTrain string `mapstructure:"classifier_train"`
	// ImageSize is the side of the square model input [ImageSize, ImageSize, Channels];
	// smaller images are centered on a black canvas (pixel 0, i.e. -1 after scaling).
	ImageSize int `mapstructure:"image_size"`
	// Channels is 1 (grayscale) or 3 (RGB).
	Channels int `mapstructure:"channels"`
	// NumClasses bounds the labels: every label must lie in [0, NumClasses).
	NumClasses int `mapstructure:"num_classes"`
	// ReadBatchRows is the number of rows per Arrow record batch when streaming a file.
	ReadBatchRows int `mapstructure:"read_batch_rows"`

	// ShuffleBuffer is the size of the shuffle buffer run over each epoch's row stream
	// (after the per-epoch shuffle of row groups); 0 or 1 keeps the row-group order.
	ShuffleBuffer int `mapstructure:"shuffle_buffer"`
	// Workers is the number of image-decoding goroutines; the batches do not depend on it.
	Workers int `mapstructure:"workers"`
	// Prefetch is the number of ready batches decoded ahead of Next.
	Prefetch int `mapstructure:"prefetch"`

	// HFlip flips each image horizontally with probability 1/2 (off for digits and text).
	HFlip bool `mapstructure:"hflip"`
	// CropScale is the minimum area fraction of a random square crop that is resized back
	// to ImageSize; 1 turns cropping off.
	CropScale float64 `mapstructure:"crop_scale"`

	// Condition is "label", "caption", "text_embedding" or "none" (see Condition*).
	Condition string `mapstructure:"condition"`
	// MaxTokens is the number of caption token ids per example (padded with 0, truncated).
	MaxTokens int `mapstructure:"max_tokens"`
	// Noise reads the noise column into Batch.Noise (noise–image pairs for SDXS, arXiv
	// 2403.16627): every row needs as many values as its model input, image (image_size²·channels)
	// or latent. Augmentation that moves pixels (HFlip, CropScale < 1) must be off, or image and
	// noise would no longer pair.
	Noise bool `mapstructure:"noise"`

	// Labels keeps only rows whose label is listed; empty keeps all.
	Labels []int `mapstructure:"labels"`
	// MinScore keeps only rows with score >= MinScore when UseMinScore is set.
	MinScore    float64 `mapstructure:"min_score"`
	UseMinScore bool    `mapstructure:"use_min_score"`
	// TopK keeps only the TopK highest-scoring rows (after the other filters), per class when
	// TopKPerClass is set; 0 turns it off. Ties keep the earlier row.
	TopK         int  `mapstructure:"top_k"`
	TopKPerClass bool `mapstructure:"top_k_per_class"`
	// CaptionContains keeps only rows whose caption contains it (case-insensitive); "" keeps all.
	CaptionContains string `mapstructure:"caption_contains"`
	// BadRows is "skip" or "fail" (see BadRows*).
	BadRows string `mapstructure:"bad_rows"`
}

// DefaultConfig returns the defaults: MNIST at data/mnist-{train,test}.parquet, padded to
// 32×32×1, 10 classes, label conditioning, no noise column, no filters, no augmentation, a
// shuffle buffer of 10,000 rows, 2 decode workers and 4 prefetched batches.
func DefaultConfig() Config {
	return Config{
		Train:         "data/mnist-train.parquet",
		Test:          "data/mnist-test.parquet",
		ImageSize:     32,
		Channels:      1,
		NumClasses:    10,
		ReadBatchRows: 4096,
		ShuffleBuffer: 10000,
		Workers:       2,
		Prefetch:      4,
		HFlip:         false,
		CropScale:     1,
		Condition:     ConditionLabel,
		MaxTokens:     16,
		Noise:         false,
		BadRows:       BadRowsSkip,
	}
}

// Validate reports every invalid field, naming its key ("data.image_size", ...).
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Train) == "" {
		errs = append(errs, errors.New("data.train: must name a Parquet file, got empty string"))
	}
	for _, g := range splitGlobs(c.Train) {
		if _, err := filepath.Match(g, ""); err != nil {
			errs = append(errs, fmt.Errorf("data.train: glob %q: %w", g, err))
		}
	}
	if err := c.validateShape(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(append(errs, c.validateStream()...)...)
}

// validateShape checks the fields Load and Loader use (everything but the paths).
func (c Config) validateShape() error {
	var errs []error
	positive := func(key string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("data.%s: must be positive, got %d", key, v))
		}
	}
	positive("image_size", c.ImageSize)
	positive("num_classes", c.NumClasses)
	positive("read_batch_rows", c.ReadBatchRows)
	if c.Channels != 1 && c.Channels != 3 {
		errs = append(errs, fmt.Errorf("data.channels: must be 1 (grayscale) or 3 (RGB), got %d", c.Channels))
	}
	return errors.Join(errs...)
}

// validateStream checks the fields only Open uses.
func (c Config) validateStream() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("data.%s: "+format, append([]any{key}, args...)...))
	}
	if c.ShuffleBuffer < 0 {
		bad("shuffle_buffer", "must be >= 0, got %d", c.ShuffleBuffer)
	}
	if c.Workers <= 0 {
		bad("workers", "must be positive, got %d", c.Workers)
	}
	if c.Prefetch <= 0 {
		bad("prefetch", "must be positive, got %d", c.Prefetch)
	}
	if !(c.CropScale > 0 && c.CropScale <= 1) {
		bad("crop_scale", "must be in (0, 1] (1 = no crop), got %v", c.CropScale)
	}
	switch c.Condition {
	case ConditionLabel, ConditionCaption, ConditionTextEmbedding, ConditionNone:
	default:
		bad("condition", "must be %q, %q, %q or %q, got %q", ConditionLabel, ConditionCaption, ConditionTextEmbedding, ConditionNone, c.Condition)
	}
	if c.MaxTokens <= 0 {
		bad("max_tokens", "must be positive, got %d", c.MaxTokens)
	}
	if c.Noise && c.HFlip {
		bad("noise", "horizontal flips (data.hflip) would break noise–image pairs; set data.hflip false")
	}
	if c.Noise && c.CropScale < 1 {
		bad("noise", "random crops (data.crop_scale %v < 1) would break noise–image pairs; set data.crop_scale 1", c.CropScale)
	}
	for i, l := range c.Labels {
		if l < 0 || l >= c.NumClasses {
			bad("labels", "entry %d is %d, want a class in [0, %d) (data.num_classes)", i, l, c.NumClasses)
		}
	}
	if math.IsNaN(c.MinScore) || math.IsInf(c.MinScore, 0) {
		bad("min_score", "must be finite, got %v", c.MinScore)
	}
	if c.TopK < 0 {
		bad("top_k", "must be >= 0 (0 = off), got %d", c.TopK)
	}
	if c.TopKPerClass && c.TopK == 0 {
		bad("top_k_per_class", "needs data.top_k > 0")
	}
	if c.BadRows != BadRowsSkip && c.BadRows != BadRowsFail {
		bad("bad_rows", "must be %q or %q, got %q", BadRowsSkip, BadRowsFail, c.BadRows)
	}
	return errs
}

// splitGlobs splits Config.Train into its comma-separated, trimmed, non-empty globs.
func splitGlobs(list string) []string {
	var out []string
	for _, g := range strings.Split(list, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}
