package data

import (
	"errors"
	"fmt"
)

// Config is the `data:` section of a run config (YAML keys in mapstructure tags).
// Defaults live only in DefaultConfig.
type Config struct {
	// Train is the Parquet file with the training split.
	Train string `mapstructure:"train"`
	// Test is the Parquet file with the test split (optional).
	Test string `mapstructure:"test"`
	// ImageSize is the side of the square model input [ImageSize, ImageSize, Channels];
	// smaller images are centered on a black canvas (pixel 0, i.e. -1 after scaling).
	ImageSize int `mapstructure:"image_size"`
	// Channels is 1 (grayscale) or 3 (RGB).
	Channels int `mapstructure:"channels"`
	// NumClasses bounds the labels: every label must lie in [0, NumClasses).
	NumClasses int `mapstructure:"num_classes"`
	// ReadBatchRows is the number of rows per Arrow record batch when streaming a file.
	ReadBatchRows int `mapstructure:"read_batch_rows"`
}

// DefaultConfig returns the defaults: MNIST at data/mnist-{train,test}.parquet, padded to
// 32×32×1, 10 classes, 4096 rows per record batch.
func DefaultConfig() Config {
	return Config{
		Train:         "data/mnist-train.parquet",
		Test:          "data/mnist-test.parquet",
		ImageSize:     32,
		Channels:      1,
		NumClasses:    10,
		ReadBatchRows: 4096,
	}
}

// Validate reports every invalid field, naming its key ("data.image_size", ...).
func (c Config) Validate() error {
	var errs []error
	if c.Train == "" {
		errs = append(errs, errors.New("data.train: must name a Parquet file, got empty string"))
	}
	if err := c.validateShape(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
