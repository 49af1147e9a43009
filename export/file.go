package export

import (
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
)

// version is the fewstep version recorded in exported files when set at link time:
// go build -ldflags "-X github.com/fewstep/fewstep/export.version=v0.10.0" ./cmd/fewstep
var version string

// Version is the fewstep version written to fewstep.version: the link-time version when set,
// else the module version and VCS revision of the build ("(devel) 1a2b3c4d5e6f+dirty" for a build
// from a modified checkout; the fewstep binary has no other version report).
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v
}

// Write checks m (Check) and writes it atomically to path as a fewstep-model/1 safetensors file
// (temp file, fsync, rename; checkpoints.WriteSafetensors). An empty Source.Version is recorded
// as Version().
func Write(path string, m *Model) error {
	if err := m.Check(); err != nil {
		return fmt.Errorf("export: write %s: %w", path, err)
	}
	md, err := m.metadata()
	if err != nil {
		return fmt.Errorf("export: write %s: %w", path, err)
	}
	named := make([]checkpoints.NamedTensor, 0, len(m.Tensors))
	for _, name := range m.Names() {
		named = append(named, checkpoints.NamedTensor{Name: name, Tensor: m.Tensors[name]})
	}
	if m.Latent != nil {
		for _, name := range slices.Sorted(maps.Keys(m.Latent.Decoder)) {
			named = append(named, checkpoints.NamedTensor{Name: DecoderPrefix + name, Tensor: m.Latent.Decoder[name]})
		}
	}
	return checkpoints.WriteSafetensors(path, named, md)
}

// ReadModel reads and validates an exported model file: every structural check of
// checkpoints.ReadSafetensors, then Parse. Errors name the file and the problem.
func ReadModel(path string) (*Model, error) {
	ts, md, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(ts, md)
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", path, err)
	}
	return m, nil
}

// Parse builds the model of a safetensors file's tensors and metadata (as read by
// checkpoints.ReadSafetensors) and checks it (Check): export format, metadata keys and values,
// configs, and the tensors against the network of the model config.
func Parse(ts map[string]*tensors.Tensor, md map[string]string) (*Model, error) {
	m := &Model{Tensors: ts}
	if err := parseMetadata(md, m); err != nil {
		return nil, err
	}
	m.splitDecoder()
	if err := m.Check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Describe is a one-line summary: architecture, size, weights and sampling hints.
func (m *Model) Describe() string {
	var b strings.Builder
	ih, iw, ic := m.ImageShape()
	fmt.Fprintf(&b, "%s %v×%d, %d tensors, %d parameters, %d×%d×%d images, %d classes, %s/%s",
		m.Model.Arch, m.Model.ChannelMult, m.Model.BaseChannels, len(m.Tensors), m.NumParams(),
		ih, iw, ic, m.Model.NumClasses, m.Diffusion.Schedule, m.Diffusion.Prediction)
	if m.Latent != nil {
		lh, lw, lc := m.InputShape()
		kind := "decoder"
		if m.Latent.Tiny != nil {
			kind = "tiny decoder distilled from the decoder"
		}
		fmt.Fprintf(&b, " decoded from %d×%d×%d latents (scale %.4g, %s of %s step %d, %d tensors)", lh, lw, lc, m.Latent.Scale,
			kind, m.Latent.Source.Run, m.Latent.Source.Step, len(m.Latent.Decoder))
	}
	if m.Distilled {
		fmt.Fprintf(&b, ", distilled student at t=%v", m.StudentTimes)
	}
	fmt.Fprintf(&b, "; %s weights of %s step %d; recommended: %d %s steps (%s), cfg %g",
		m.Source.Weights, m.Source.Run, m.Source.Step, m.Sample.Steps, m.Sample.Sampler, m.Sample.Spacing, m.Sample.CFG)
	return b.String()
}
