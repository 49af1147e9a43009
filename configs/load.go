package configs

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

//go:embed *.yaml
var presets embed.FS

// Error is a configuration mistake: Source is the file, environment variable or -set flag, Key the
// dotted key ("trainer.steps"), Msg what is wrong. The CLI exits with code 2 on it.
type Error struct {
	Source, Key, Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.Source, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Source, e.Key, e.Msg)
}

// EnvPrefix starts the environment overrides FEWSTEP_<SECTION>_<KEY>.
const EnvPrefix = "FEWSTEP_"

// ReservedEnv lists FEWSTEP_ variables that are not config overrides: FEWSTEP_CACHE_DIR (where
// eval classifiers are cached), FEWSTEP_ONNXRUNTIME (the ONNX Runtime library for tests), and the
// scripts' FEWSTEP_BIN (which binary `make ladd` etc. run) and FEWSTEP_ENGINE (quickstart's engine),
// which reach the binary through the environment of `FEWSTEP_BIN=… make ladd`.
var ReservedEnv = map[string]bool{"FEWSTEP_CACHE_DIR": true, "FEWSTEP_ONNXRUNTIME": true, "FEWSTEP_BIN": true, "FEWSTEP_ENGINE": true}

// Presets lists the names of the embedded configs (usable as `-config NAME`).
func Presets() []string {
	entries, _ := presets.ReadDir(".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return names
}

// Preset returns the YAML text of an embedded config.
func Preset(name string) ([]byte, error) {
	return presets.ReadFile(name + ".yaml")
}

// Load resolves a run config: defaults, then the YAML of nameOrPath (a file path, or the name of an
// embedded preset), then environment overrides from environ, then sets ("section.key=value").
// It returns the validated config and its resolved YAML.
func Load(nameOrPath string, sets []string, environ []string) (*Run, []byte, error) {
	text, source, err := readSource(nameOrPath)
	if err != nil {
		return nil, nil, err
	}
	v := viper.NewWithOptions(viper.ExperimentalBindStruct())
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(text)); err != nil {
		return nil, nil, &Error{Source: source, Msg: "invalid YAML: " + err.Error()}
	}
	// Key → where its value came from, for error messages.
	origin := map[string]string{}
	if err := checkKeys(v.AllSettings(), source, origin); err != nil {
		return nil, nil, err
	}
	overrides, err := collectOverrides(sets, environ)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range overrides {
		if err := checkKeys(nest(o.key, o.value), o.source, origin); err != nil {
			return nil, nil, err
		}
		v.Set(o.key, o.value)
	}
	cfg := Default()
	if err := decode(v.AllSettings(), &cfg); err != nil {
		return nil, nil, asConfigError(err, source, origin)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, asConfigError(err, source, origin)
	}
	if err := cfg.resolveText(); err != nil {
		return nil, nil, asConfigError(err, source, origin)
	}
	resolved, err := cfg.YAML()
	if err != nil {
		return nil, nil, err
	}
	return &cfg, resolved, nil
}

// readSource returns the YAML text of a path or preset and the name to use in messages.
func readSource(nameOrPath string) ([]byte, string, error) {
	if text, err := os.ReadFile(nameOrPath); err == nil {
		return text, nameOrPath, nil
	} else if !errors.Is(err, os.ErrNotExist) || strings.ContainsAny(nameOrPath, "/\\") || strings.HasSuffix(nameOrPath, ".yaml") {
		return nil, "", &Error{Source: nameOrPath, Msg: err.Error()}
	}
	text, err := Preset(nameOrPath)
	if err != nil {
		return nil, "", &Error{Source: nameOrPath, Msg: fmt.Sprintf("no such file and no embedded preset of that name (presets: %s)", strings.Join(Presets(), ", "))}
	}
	return text, "preset " + nameOrPath, nil
}

type override struct {
	key, source string
	value       any
}

// collectOverrides parses FEWSTEP_<SECTION>_<KEY>=v variables, then -set section.key=v flags;
// values are read as YAML scalars or flow lists ("3", "1e-4", "true", "[1,2,2]").
func collectOverrides(sets []string, environ []string) ([]override, error) {
	var out []override
	sectionNames := fieldNames(reflect.TypeOf(Run{}))
	sort.Strings(environ)
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || ReservedEnv[name] {
			continue
		}
		rest := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
		section, key, ok := strings.Cut(rest, "_")
		if !ok || !sectionNames[section] {
			return nil, &Error{Source: "environment " + name, Msg: fmt.Sprintf("not a config override: want %s<SECTION>_<KEY> with a section among %s", EnvPrefix, sortedKeys(sectionNames))}
		}
		o, err := parseOverride(section+"."+key, val, "environment "+name)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	for _, s := range sets {
		key, val, ok := strings.Cut(s, "=")
		if !ok || !strings.Contains(key, ".") {
			return nil, &Error{Source: "-set " + s, Msg: "want section.key=value"}
		}
		o, err := parseOverride(strings.ToLower(strings.TrimSpace(key)), val, "-set "+s)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func parseOverride(key, val, source string) (override, error) {
	var parsed any
	if err := yaml.Unmarshal([]byte(val), &parsed); err != nil {
		return override{}, &Error{Source: source, Key: key, Msg: "cannot parse value: " + err.Error()}
	}
	if parsed == nil {
		parsed = ""
	}
	return override{key: key, source: source, value: parsed}, nil
}

// nest turns "a.b" = v into {"a": {"b": v}}.
func nest(key string, value any) map[string]any {
	parts := strings.Split(key, ".")
	m := map[string]any{parts[len(parts)-1]: value}
	for i := len(parts) - 2; i >= 0; i-- {
		m = map[string]any{parts[i]: m}
	}
	return m
}

// checkKeys rejects keys that are not fields of Run (naming the closest known key) and records the
// origin of every leaf key.
func checkKeys(settings map[string]any, source string, origin map[string]string) error {
	return walkKeys(settings, reflect.TypeOf(Run{}), "", source, origin)
}

func walkKeys(m map[string]any, t reflect.Type, prefix, source string, origin map[string]string) error {
	known := fieldNames(t)
	for _, k := range keyList(toSet(m)) {
		full := strings.TrimPrefix(prefix+"."+k, ".")
		f, ok := fieldByTag(t, k)
		if !ok {
			return &Error{Source: source, Key: full, Msg: unknownKeyMsg(k, known)}
		}
		if f.Type.Kind() == reflect.Struct {
			sub, isMap := m[k].(map[string]any)
			if !isMap {
				return &Error{Source: source, Key: full, Msg: fmt.Sprintf("must be a section (a mapping), got %v", m[k])}
			}
			if err := walkKeys(sub, f.Type, full, source, origin); err != nil {
				return err
			}
			continue
		}
		origin[full] = source
	}
	return nil
}

func unknownKeyMsg(k string, known map[string]bool) string {
	best, bestD := "", math.MaxInt
	for cand := range known {
		if d := editDistance(k, cand); d < bestD {
			best, bestD = cand, d
		}
	}
	msg := "unknown key"
	if bestD <= 3 {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg + "; known keys: " + sortedKeys(known)
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("mapstructure") == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldNames(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		out[t.Field(i).Tag.Get("mapstructure")] = true
	}
	return out
}

func toSet(m map[string]any) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func keyList(s map[string]bool) []string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys(s map[string]bool) string { return strings.Join(keyList(s), ", ") }

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// decode strictly decodes settings onto cfg (which holds the defaults): no weak typing, unknown
// keys are errors, integers must be whole numbers.
func decode(settings map[string]any, cfg *Run) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:      cfg,
		ErrorUnused: true,
		DecodeHook:  strictNumbers,
	})
	if err != nil {
		return err
	}
	return dec.Decode(settings)
}

// strictNumbers rejects fractional values for integer fields (mapstructure would truncate 1.5 to
// 1) and keeps float fields from receiving strings.
func strictNumbers(from, to reflect.Type, data any) (any, error) {
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if f, ok := data.(float64); ok {
			if f != math.Trunc(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("must be a whole number, got %v", f)
			}
			return int64(f), nil
		}
	}
	return data, nil
}

// asConfigError turns decode/validation errors into an *Error naming the key and its source.
func asConfigError(err error, source string, origin map[string]string) error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		key := de.Name()
		src := source
		if o, ok := origin[key]; ok {
			src = o
		}
		msg := de.Unwrap().Error()
		return &Error{Source: src, Key: key, Msg: msg}
	}
	msg := err.Error()
	if key, rest, ok := strings.Cut(msg, ": "); ok && strings.Contains(key, ".") && !strings.Contains(key, " ") {
		k := strings.Split(key, "[")[0]
		if o, ok := origin[k]; ok {
			source = o
		}
		return &Error{Source: source, Key: key, Msg: rest}
	}
	return &Error{Source: source, Msg: msg}
}
