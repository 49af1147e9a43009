package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
)

// knownKeys are the metadata keys of Format; any other "fewstep." key is an error.
var knownKeys = map[string]bool{KeyFormat: true, KeyModel: true, KeyDiffusion: true, KeyData: true, KeySample: true,
	KeyClassNames: true, KeyDistilled: true, KeyStudentTimes: true, KeySourceRun: true, KeySourceStep: true,
	KeyWeights: true, KeyVersion: true, keyCRC: true, KeyLatent: true}

// metadata encodes m's configs, hints and provenance as safetensors metadata.
func (m *Model) metadata() (map[string]string, error) {
	version := m.Source.Version
	if version == "" {
		version = Version()
	}
	md := map[string]string{
		KeyFormat:     Format,
		KeyDistilled:  strconv.FormatBool(m.Distilled),
		KeySourceRun:  m.Source.Run,
		KeySourceStep: strconv.FormatInt(m.Source.Step, 10),
		KeyWeights:    m.Source.Weights,
		KeyVersion:    version,
	}
	section := maps.Clone(m.Sample.Section)
	if section == nil {
		section = map[string]any{}
	}
	section["sampler"], section["steps"], section["cfg"], section["spacing"] = m.Sample.Sampler, m.Sample.Steps, m.Sample.CFG, m.Sample.Spacing
	values := map[string]any{KeyModel: m.Model, KeyDiffusion: m.Diffusion, KeyData: m.Data, KeySample: section}
	if m.ClassNames != nil {
		values[KeyClassNames] = m.ClassNames
	}
	if m.Distilled {
		values[KeyStudentTimes] = m.StudentTimes
	}
	if m.Latent != nil {
		b, err := json.Marshal(m.Latent)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %w", KeyLatent, err)
		}
		md[KeyLatent] = string(b)
	}
	for key, v := range values {
		s, err := encodeJSON(v)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %w", key, err)
		}
		md[key] = s
	}
	return md, nil
}

// encodeJSON encodes a config struct as a JSON object with its mapstructure key names, or any
// other value as plain JSON.
func encodeJSON(v any) (string, error) {
	switch v.(type) {
	case map[string]any, []string, []float64:
	default:
		m := map[string]any{}
		if err := mapstructure.Decode(v, &m); err != nil {
			return "", err
		}
		v = m
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// decodeJSON parses the JSON value of metadata key into out; exact numbers (json.Number), no
// trailing data.
func decodeJSON(md map[string]string, key string, out any) error {
	raw, ok := md[key]
	if !ok {
		return fmt.Errorf("metadata %s is missing", key)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("metadata %s: invalid JSON: %w", key, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("metadata %s: trailing data after the JSON value", key)
	}
	return nil
}

// decodeSection parses the JSON object of metadata key into the config struct out: unknown keys
// are errors; with all, so are missing ones.
func decodeSection(md map[string]string, key string, out any, all bool) (map[string]any, error) {
	var m map[string]any
	if err := decodeJSON(md, key, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("metadata %s: want a JSON object, got null", key)
	}
	if err := decodeMap(m, out, all); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", key, err)
	}
	return m, nil
}

// decodeMap decodes m into the struct out by mapstructure tags, rejecting unknown keys (and, with
// all, missing ones) and numbers that do not fit the field (2.5 for an int).
func decodeMap(m map[string]any, out any, all bool) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: out, ErrorUnused: true, ErrorUnset: all, AllowUnsetPointer: true})
	if err != nil {
		return err
	}
	return dec.Decode(m)
}

// parseDiffusion decodes fewstep.diffusion strictly (every key present, none unknown), except
// `shift`, which files written before it existed lack: they are unshifted (1).
func parseDiffusion(md map[string]string, out *models.DiffusionConfig) error {
	var m map[string]any
	if err := decodeJSON(md, KeyDiffusion, &m); err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("metadata %s: want a JSON object, got null", KeyDiffusion)
	}
	if _, ok := m["shift"]; !ok {
		m["shift"] = 1.0
	}
	if err := decodeMap(m, out, true); err != nil {
		return fmt.Errorf("metadata %s: %w", KeyDiffusion, err)
	}
	return nil
}

// parseMetadata decodes every key of md into m (tensors aside).
func parseMetadata(md map[string]string, m *Model) error {
	if err := checkKeys(md); err != nil {
		return err
	}
	if _, err := decodeSection(md, KeyModel, &m.Model, true); err != nil {
		return err
	}
	if err := parseDiffusion(md, &m.Diffusion); err != nil {
		return err
	}
	m.Data = data.DefaultConfig() // the data section does not shape the network: keys it lacks take their defaults
	if _, err := decodeSection(md, KeyData, &m.Data, false); err != nil {
		return err
	}
	if err := parseSample(md, &m.Sample); err != nil {
		return err
	}
	if _, ok := md[KeyClassNames]; ok {
		if err := decodeJSON(md, KeyClassNames, &m.ClassNames); err != nil {
			return err
		}
		if m.ClassNames == nil {
			return fmt.Errorf("metadata %s: want a JSON list of strings, got null", KeyClassNames)
		}
	}
	d, err := strconv.ParseBool(md[KeyDistilled])
	if err != nil {
		return fmt.Errorf("metadata %s: want true or false, got %q", KeyDistilled, md[KeyDistilled])
	}
	m.Distilled = d
	if _, ok := md[KeyStudentTimes]; ok || d {
		var times []json.Number
		if err := decodeJSON(md, KeyStudentTimes, &times); err != nil {
			return err
		}
		for _, t := range times {
			f, err := t.Float64()
			if err != nil {
				return fmt.Errorf("metadata %s: %q is not a number", KeyStudentTimes, t)
			}
			m.StudentTimes = append(m.StudentTimes, f)
		}
	}
	if err := parseLatent(md, m); err != nil {
		return err
	}
	return parseSource(md, &m.Source)
}

// checkKeys verifies the format and that every fewstep.* key is one of Format's.
func checkKeys(md map[string]string) error {
	f, ok := md[KeyFormat]
	if !ok {
		return fmt.Errorf("no %s metadata: not an exported fewstep model (a training checkpoint? export it with `fewstep export -run RUN_DIR`)", KeyFormat)
	}
	if f != Format {
		return fmt.Errorf("unknown export format %s=%q (this fewstep reads %q)", KeyFormat, f, Format)
	}
	for k := range md {
		if strings.HasPrefix(k, "fewstep.") && !knownKeys[k] {
			return fmt.Errorf("unknown metadata key %q for format %s", k, Format)
		}
	}
	return nil
}

// parseSample decodes the sample section: sampler, steps, cfg and spacing are required.
func parseSample(md map[string]string, s *Sampling) error {
	var hints struct {
		Sampler string  `mapstructure:"sampler"`
		Steps   int     `mapstructure:"steps"`
		CFG     float64 `mapstructure:"cfg"`
		Spacing string  `mapstructure:"spacing"`
	}
	var section map[string]any
	if err := decodeJSON(md, KeySample, &section); err != nil {
		return err
	}
	if section == nil {
		return fmt.Errorf("metadata %s: want a JSON object, got null", KeySample)
	}
	sub := map[string]any{}
	for _, k := range []string{"sampler", "steps", "cfg", "spacing"} {
		v, ok := section[k]
		if !ok {
			return fmt.Errorf("metadata %s: missing key %q", KeySample, k)
		}
		sub[k] = v
	}
	if err := decodeMap(sub, &hints, true); err != nil {
		return fmt.Errorf("metadata %s: %w", KeySample, err)
	}
	*s = Sampling{Sampler: hints.Sampler, Steps: hints.Steps, CFG: hints.CFG, Spacing: hints.Spacing, Section: section}
	return nil
}

// parseSource decodes the provenance keys.
func parseSource(md map[string]string, s *Source) error {
	for _, k := range []string{KeySourceRun, KeySourceStep, KeyWeights, KeyVersion} {
		if _, ok := md[k]; !ok {
			return fmt.Errorf("metadata %s is missing", k)
		}
	}
	step, err := strconv.ParseInt(md[KeySourceStep], 10, 64)
	if err != nil {
		return fmt.Errorf("metadata %s: want an integer, got %q", KeySourceStep, md[KeySourceStep])
	}
	*s = Source{Run: md[KeySourceRun], Step: step, Weights: md[KeyWeights], Version: md[KeyVersion]}
	return nil
}
