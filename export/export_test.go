package export

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// TestRoundTrip: Write → ReadModel gives back every tensor bit for bit and every metadata field.
func TestRoundTrip(t *testing.T) {
	m, path := writeTiny(t)
	got, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Names(), m.Names()) {
		t.Fatalf("names %v, want %v", got.Names(), m.Names())
	}
	for name, want := range m.Tensors {
		if !sameBytes(t, got.Tensors[name], want) {
			t.Errorf("tensor %q differs after the round trip", name)
		}
	}
	if !reflect.DeepEqual(got.Model, m.Model) || got.Diffusion != m.Diffusion || !reflect.DeepEqual(got.Data, m.Data) {
		t.Errorf("configs differ:\n%+v\n%+v\n%+v\nwant\n%+v\n%+v\n%+v", got.Model, got.Diffusion, got.Data, m.Model, m.Diffusion, m.Data)
	}
	if got.Sample.Sampler != "ddim" || got.Sample.Steps != 4 || got.Sample.CFG != 2 || got.Sample.Spacing != "trailing" {
		t.Errorf("sampling hints %+v", got.Sample)
	}
	if !slices.Equal(got.ClassNames, m.ClassNames) || got.Distilled || got.StudentTimes != nil {
		t.Errorf("class names %v, distilled %v, student times %v", got.ClassNames, got.Distilled, got.StudentTimes)
	}
	if got.Source.Run != "runs/tiny" || got.Source.Step != 40 || got.Source.Weights != WeightsEMA || got.Source.Version != Version() {
		t.Errorf("source %+v", got.Source)
	}
	var sc struct {
		Sampler   string    `mapstructure:"sampler"`
		Steps     int       `mapstructure:"steps"`
		CFG       float64   `mapstructure:"cfg"`
		Spacing   string    `mapstructure:"spacing"`
		Eta       float64   `mapstructure:"eta"`
		ClipX0    bool      `mapstructure:"clip_x0"`
		Timesteps []float64 `mapstructure:"timesteps"`
	}
	if err := got.Sample.Decode(&sc); err != nil || sc.Steps != 4 || !sc.ClipX0 || sc.Sampler != "ddim" {
		t.Errorf("Decode: %+v, %v", sc, err)
	}
	_, md, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{KeyFormat, KeyModel, KeyDiffusion, KeyData, KeySample, KeyClassNames, KeyDistilled, KeySourceRun, KeySourceStep, KeyWeights, KeyVersion, keyCRC} {
		if _, ok := md[k]; !ok {
			t.Errorf("metadata key %s missing", k)
		}
	}
	if _, ok := md[KeyStudentTimes]; ok {
		t.Errorf("a non-distilled model has %s", KeyStudentTimes)
	}
}

// TestDataKeysDefault: a data section without some keys (a file from before they existed) reads
// with data.DefaultConfig's values; the model section must be complete (see corrupt_test.go).
func TestDataKeysDefault(t *testing.T) {
	m := tinyModel(t)
	md, err := m.metadata()
	if err != nil {
		t.Fatal(err)
	}
	md[KeyData] = strings.Replace(md[KeyData], `"workers":2`, `"workers":5`, 1)
	md[KeyData] = strings.Replace(md[KeyData], `"classifier_train":"",`, ``, 1)
	md[KeyData] = strings.Replace(md[KeyData], `"shuffle_buffer":10000,`, ``, 1)
	got, err := ReadModel(writeRaw(t, m.Tensors, md))
	if err != nil {
		t.Fatal(err)
	}
	if got.Data.Workers != 5 || got.Data.ShuffleBuffer != data.DefaultConfig().ShuffleBuffer || got.Data.ImageSize != 32 {
		t.Errorf("data %+v", got.Data)
	}
}

// TestExpectedPixelHead: model.pixel_head adds exactly the two full-resolution head convs, with
// the shapes the README documents ([3, 3, 2c, H] and [3, 3, H, c]).
func TestExpectedPixelHead(t *testing.T) {
	mc := models.DefaultConfig()
	mc.BaseChannels, mc.ChannelMult, mc.AttentionResolutions, mc.PatchSize = 8, []int{1, 2}, nil, 2
	base, err := Expected(mc, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	mc.PixelHead = 5
	head, err := Expected(mc, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"out/pixel_head1/kernel": {3, 3, 6, 5}, "out/pixel_head1/bias": {5},
		"out/pixel_head2/kernel": {3, 3, 5, 3}, "out/pixel_head2/bias": {3},
	}
	if len(head) != len(base)+len(want) {
		t.Fatalf("pixel_head 5: %d tensors, want %d + %d", len(head), len(base), len(want))
	}
	for name, dims := range want {
		if s, ok := head[name]; !ok || !slices.Equal(s.Dimensions, dims) {
			t.Errorf("%s: %v (present %v), want %v", name, s, ok, dims)
		}
	}
	mc.PixelHead = -1
	if _, err := Expected(mc, 8, 3); err == nil || !strings.Contains(err.Error(), "model.pixel_head") {
		t.Errorf("pixel_head -1: %v, want a model.pixel_head error", err)
	}
}
