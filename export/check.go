package export

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Check validates a model: its configs (each package's Validate, and model and data agreeing),
// sampling hints, class names, student times and source, and its tensors against the network its
// model config builds (every tensor present, F32, of the right shape, and no other).
func (m *Model) Check() error {
	if err := m.checkMetadata(); err != nil {
		return err
	}
	return m.checkTensors()
}

// checkMetadata validates everything but the tensors.
func (m *Model) checkMetadata() error {
	for _, c := range []struct {
		key string
		v   interface{ Validate() error }
	}{{KeyModel, m.Model}, {KeyDiffusion, m.Diffusion}, {KeyData, m.Data}} {
		if err := c.v.Validate(); err != nil {
			return fmt.Errorf("metadata %s: %w", c.key, err)
		}
	}
	if m.Model.NumClasses != m.Data.NumClasses {
		return fmt.Errorf("metadata %s: num_classes %d disagrees with %s num_classes %d", KeyModel, m.Model.NumClasses, KeyData, m.Data.NumClasses)
	}
	if h, _, _ := m.InputShape(); m.Model.CheckInput(h) != nil {
		return fmt.Errorf("metadata %s: %w", KeyData, m.Model.CheckInput(h))
	}
	if err := m.Model.CheckInput(m.Data.ImageSize); m.Latent == nil && err != nil {
		return fmt.Errorf("metadata %s: %w", KeyData, err)
	}
	s := m.Sample
	if s.Sampler == "" || s.Spacing == "" || s.Steps <= 0 || !(s.CFG >= 0) || math.IsInf(s.CFG, 0) {
		return fmt.Errorf("metadata %s: need a sampler, a spacing, steps > 0 and cfg >= 0; got sampler %q, spacing %q, steps %d, cfg %g",
			KeySample, s.Sampler, s.Spacing, s.Steps, s.CFG)
	}
	if m.ClassNames != nil && len(m.ClassNames) != m.Model.NumClasses {
		return fmt.Errorf("metadata %s: %d names for %d classes", KeyClassNames, len(m.ClassNames), m.Model.NumClasses)
	}
	if s.Spacing == "student" && !m.Distilled {
		return fmt.Errorf("metadata %s: spacing student is for distilled models (their %s)", KeySample, KeyStudentTimes)
	}
	if !m.Distilled && m.StudentTimes != nil {
		return fmt.Errorf("metadata %s: only distilled models have student times", KeyStudentTimes)
	}
	if m.Distilled {
		if len(m.StudentTimes) == 0 {
			return fmt.Errorf("metadata %s: a distilled model needs its student times", KeyStudentTimes)
		}
		for i, t := range m.StudentTimes {
			if !(t > 0 && t <= m.Diffusion.TMax) || (i > 0 && t >= m.StudentTimes[i-1]) {
				return fmt.Errorf("metadata %s: want times descending in (0, t_max=%g], got %v", KeyStudentTimes, m.Diffusion.TMax, m.StudentTimes)
			}
		}
	}
	if m.Source.Weights != WeightsEMA && m.Source.Weights != WeightsRaw {
		return fmt.Errorf("metadata %s: want %q or %q, got %q", KeyWeights, WeightsEMA, WeightsRaw, m.Source.Weights)
	}
	if m.Source.Step < 0 {
		return fmt.Errorf("metadata %s: negative step %d", KeySourceStep, m.Source.Step)
	}
	return nil
}

// checkTensors compares the tensors with those the model config's network has.
func (m *Model) checkTensors() error {
	h, _, c := m.InputShape()
	want, err := Expected(m.Model, h, c)
	if err != nil {
		return err
	}
	if m.Latent != nil {
		if err := m.Latent.checkDecoder(); err != nil {
			return err
		}
	}
	var missing, extra, wrong []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		t, ok := m.Tensors[name]
		switch {
		case !ok:
			missing = append(missing, fmt.Sprintf("%q", name))
		case t == nil:
			wrong = append(wrong, fmt.Sprintf("tensor %q is nil", name))
		case !t.Shape().Equal(want[name]):
			wrong = append(wrong, fmt.Sprintf("tensor %q: shape %s, but the model config needs %s", name, t.Shape(), want[name]))
		}
	}
	for _, name := range m.Names() {
		if _, ok := want[name]; !ok {
			extra = append(extra, fmt.Sprintf("%q", name))
		}
	}
	switch {
	case len(missing) > 0:
		return fmt.Errorf("missing tensor%s %s (of %d the model config needs)", plural(missing), list(missing), len(want))
	case len(extra) > 0:
		return fmt.Errorf("unexpected tensor%s %s: not part of the network of the model config", plural(extra), list(extra))
	case len(wrong) > 0:
		return fmt.Errorf("%s", list(wrong))
	}
	return nil
}

func plural(s []string) string {
	if len(s) == 1 {
		return ""
	}
	return "s"
}

// list joins the first few items and counts the rest.
func list(items []string) string {
	const show = 5
	if len(items) <= show {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:show], ", "), len(items)-show)
}
