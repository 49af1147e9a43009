package data

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	want := Config{Train: "data/mnist-train.parquet", Test: "data/mnist-test.parquet", ImageSize: 32, Channels: 1, NumClasses: 10, ReadBatchRows: 4096,
		ShuffleBuffer: 10000, Workers: 2, Prefetch: 4, CropScale: 1, Condition: "label", MaxTokens: 16, BadRows: "skip"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("DefaultConfig() = %+v, want %+v", c, want)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Config)
		key    string
	}{
		{"empty train", func(c *Config) { c.Train = "" }, "data.train"},
		{"zero image size", func(c *Config) { c.ImageSize = 0 }, "data.image_size"},
		{"negative image size", func(c *Config) { c.ImageSize = -32 }, "data.image_size"},
		{"two channels", func(c *Config) { c.Channels = 2 }, "data.channels"},
		{"four channels", func(c *Config) { c.Channels = 4 }, "data.channels"},
		{"zero classes", func(c *Config) { c.NumClasses = 0 }, "data.num_classes"},
		{"zero read batch", func(c *Config) { c.ReadBatchRows = 0 }, "data.read_batch_rows"},
		{"bad glob", func(c *Config) { c.Train = "a.parquet, data/[x.parquet" }, "data.train"},
		{"negative shuffle buffer", func(c *Config) { c.ShuffleBuffer = -1 }, "data.shuffle_buffer"},
		{"zero workers", func(c *Config) { c.Workers = 0 }, "data.workers"},
		{"zero prefetch", func(c *Config) { c.Prefetch = 0 }, "data.prefetch"},
		{"zero crop scale", func(c *Config) { c.CropScale = 0 }, "data.crop_scale"},
		{"crop scale above 1", func(c *Config) { c.CropScale = 1.5 }, "data.crop_scale"},
		{"unknown condition", func(c *Config) { c.Condition = "class" }, "data.condition"},
		{"zero max tokens", func(c *Config) { c.MaxTokens = 0 }, "data.max_tokens"},
		{"label out of range", func(c *Config) { c.Labels = []int{3, 10} }, "data.labels"},
		{"negative label", func(c *Config) { c.Labels = []int{-1} }, "data.labels"},
		{"NaN min score", func(c *Config) { c.MinScore = math.NaN() }, "data.min_score"},
		{"negative top k", func(c *Config) { c.TopK = -1 }, "data.top_k"},
		{"per class without k", func(c *Config) { c.TopKPerClass = true }, "data.top_k_per_class"},
		{"unknown bad rows", func(c *Config) { c.BadRows = "ignore" }, "data.bad_rows"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error naming %s", c, tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("Validate error %q does not name %s", err, tc.key)
			}
		})
	}
}

func TestValidateReportsAllErrors(t *testing.T) {
	c := Config{Channels: 2}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate(zero config) = nil")
	}
	for _, key := range []string{"data.train", "data.image_size", "data.channels", "data.num_classes", "data.read_batch_rows"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	c = DefaultConfig()
	c.Labels, c.TopK, c.TopKPerClass, c.UseMinScore, c.MinScore = []int{0, 9}, 5, true, true, -2.5
	c.Condition, c.ShuffleBuffer, c.CropScale, c.HFlip = ConditionCaption, 0, 0.5, true
	if err := c.Validate(); err != nil {
		t.Errorf("valid stream settings rejected: %v", err)
	}
	c = DefaultConfig()
	c.Test = "" // the test split is optional
	if err := c.Validate(); err != nil {
		t.Errorf("empty data.test rejected: %v", err)
	}
}

// TestConfigDecodesYAML decodes a `data:` section the way package configs does (YAML, then
// strict mapstructure onto the defaults) and checks the stream keys' types.
func TestConfigDecodesYAML(t *testing.T) {
	text := `
train: "a/*.parquet, b.parquet"
shuffle_buffer: 500
workers: 3
prefetch: 2
hflip: true
crop_scale: 0.8
condition: caption
max_tokens: 8
labels: [1, 3]
min_score: 5
use_min_score: true
top_k: 100
top_k_per_class: true
caption_contains: fox
bad_rows: fail
`
	var settings map[string]any
	if err := yaml.Unmarshal([]byte(text), &settings); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: &c, ErrorUnused: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(settings); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Train, want.ShuffleBuffer, want.Workers, want.Prefetch, want.HFlip, want.CropScale = "a/*.parquet, b.parquet", 500, 3, 2, true, 0.8
	want.Condition, want.MaxTokens, want.Labels, want.MinScore, want.UseMinScore = "caption", 8, []int{1, 3}, 5, true
	want.TopK, want.TopKPerClass, want.CaptionContains, want.BadRows = 100, true, "fox", "fail"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if got := splitGlobs(c.Train); !reflect.DeepEqual(got, []string{"a/*.parquet", "b.parquet"}) {
		t.Errorf("splitGlobs = %q", got)
	}
}
