package export

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// Format is the value of metadata KeyFormat that this version writes and reads.
const Format = "fewstep-model/1"

// Metadata keys of an exported file (see the package documentation).
const (
	KeyFormat       = "fewstep.export_format"
	KeyModel        = "fewstep.model"
	KeyDiffusion    = "fewstep.diffusion"
	KeyData         = "fewstep.data"
	KeySample       = "fewstep.sample"
	KeyClassNames   = "fewstep.class_names"
	KeyDistilled    = "fewstep.distilled"
	KeyStudentTimes = "fewstep.student_times"
	KeySourceRun    = "fewstep.source_run"
	KeySourceStep   = "fewstep.source_step"
	KeyWeights      = "fewstep.weights"
	KeyVersion      = "fewstep.version"
	keyCRC          = "fewstep.crc32c" // checkpoints.MetadataCRC, written and checked by checkpoints
)

// Weight sets of Source.Weights: the names of the training scopes they were exported from.
const (
	WeightsEMA = "ema"
	WeightsRaw = "model"
)

// Model is an exported denoiser: its configs, sampling hints and provenance, and its weights.
type Model struct {
	Model     models.Config
	Diffusion models.DiffusionConfig
	// Data is the run's data section: image_size × image_size × channels images, num_classes
	// classes (class num_classes is the null class of guidance), and the dataset it trained on.
	Data data.Config
	// Sample is the recommended sampler (the run's sample section).
	Sample Sampling
	// ClassNames are the dataset's class names, index = label; nil when unknown.
	ClassNames []string
	// Distilled marks a few-step student (sampling's noise_correction "auto" applies).
	Distilled bool
	// StudentTimes are the timesteps the student was trained at, descending in (0, t_max]
	// (distill.Config.Times); nil unless Distilled.
	StudentTimes []float64
	// Source is where the weights come from.
	Source Source
	// Tensors are the network's weights, keyed by path inside the network
	// ("down0/res0/conv1/weights"), each F32 of the shape the model config gives.
	Tensors map[string]*tensors.Tensor
	// Latent is the first stage of a latent model (its decoder and latent scale); nil for pixel
	// models.
	Latent *Latent
}

// Sampling is the recommended sampler of a model: the typed keys most readers need, and the whole
// sample section.
type Sampling struct {
	Sampler string  // ddim, euler, heun, dpmpp-2m, sde or renoise
	Steps   int     // solver steps
	CFG     float64 // classifier-free guidance scale (1: none)
	Spacing string  // timestep spacing: trailing, leading, uniform, karras, logsnr, student (StudentTimes) or list
	// Section is the whole sample section with sampling.Config's key names; the typed fields
	// above override its sampler, steps, cfg and spacing keys when written. Decode turns it into
	// a sampling.Config.
	Section map[string]any
}

// Source records where an exported model comes from.
type Source struct {
	Run     string // run directory exported
	Step    int64  // its checkpoint step
	Weights string // WeightsEMA or WeightsRaw
	Version string // fewstep version that wrote the file ("" when writing: Version())
}

// Decode decodes the whole sample section into out, a pointer to a struct with mapstructure tags
// (a sampling.Config holding its defaults): keys absent from the file keep out's values; a key out
// lacks is an error naming it.
func (s Sampling) Decode(out any) error {
	section := maps.Clone(s.Section)
	if section == nil {
		section = map[string]any{}
	}
	section["sampler"], section["steps"], section["cfg"], section["spacing"] = s.Sampler, s.Steps, s.CFG, s.Spacing
	if err := decodeMap(section, out, false); err != nil {
		return fmt.Errorf("%s: %w", KeySample, err)
	}
	return nil
}

// Names returns the tensor names in sorted order.
func (m *Model) Names() []string {
	return slices.Sorted(maps.Keys(m.Tensors))
}

// NumParams is the number of weights (elements of all tensors).
func (m *Model) NumParams() int {
	n := 0
	for _, t := range m.Tensors {
		n += t.Shape().Size()
	}
	return n
}

// FromCheckpoint selects the network weights of a training checkpoint's tensors: those under
// scope/ (WeightsEMA or WeightsRaw), renamed to their path inside the network. Everything else
// (optimizer state, teacher, discriminator, the other weight set) is left out. The tensors are
// shared, not copied.
func FromCheckpoint(ts map[string]*tensors.Tensor, scope string) (map[string]*tensors.Tensor, error) {
	out := map[string]*tensors.Tensor{}
	for name, t := range ts {
		if rest, ok := strings.CutPrefix(name, scope+"/"); ok {
			out[rest] = t
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("export: the checkpoint has no %s/* weights", scope)
	}
	return out, nil
}

// IsExport reports whether safetensors metadata marks an exported model file (any format
// version), as opposed to a training checkpoint.
func IsExport(metadata map[string]string) bool {
	_, ok := metadata[KeyFormat]
	return ok
}
