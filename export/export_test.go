package export

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
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
