package data

import (
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	want := Config{Train: "data/mnist-train.parquet", Test: "data/mnist-test.parquet", ImageSize: 32, Channels: 1, NumClasses: 10, ReadBatchRows: 4096}
	if c != want {
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
	c.Test = "" // the test split is optional
	if err := c.Validate(); err != nil {
		t.Errorf("empty data.test rejected: %v", err)
	}
}
