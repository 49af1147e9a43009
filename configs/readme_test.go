package configs

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestREADMEConfigReference: the README's config tables list exactly the keys of Run with the
// defaults of Default(), so documentation and code cannot drift apart.
func TestREADMEConfigReference(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{} // "section.key" → default cell
	section := ""
	header := regexp.MustCompile("^### `([a-z_.]+)`$")
	row := regexp.MustCompile("^\\| `([a-z_0-9]+)` \\| `([^`]*)` \\|")
	for _, line := range strings.Split(string(raw), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			section = m[1]
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && section != "" {
			documented[section+"."+m[1]] = m[2]
		}
	}
	resolved, err := Default().YAML()
	if err != nil {
		t.Fatal(err)
	}
	var defaults map[string]map[string]any
	if err := yaml.Unmarshal(resolved, &defaults); err != nil {
		t.Fatal(err)
	}
	flat := map[string]any{} // "section.key", and "section.sub.key" for nested sections (model.text)
	for sec, keys := range defaults {
		for key, value := range keys {
			if sub, ok := value.(map[string]any); ok {
				for k, v := range sub {
					flat[sec+"."+key+"."+k] = v
				}
				continue
			}
			flat[sec+"."+key] = value
		}
	}
	for full, value := range flat {
		cell, ok := documented[full]
		if !ok {
			t.Errorf("README does not document %s (default %v)", full, value)
			continue
		}
		var parsed any
		if err := yaml.Unmarshal([]byte(cell), &parsed); err != nil {
			t.Errorf("README default of %s: %v", full, err)
			continue
		}
		if fmt.Sprint(normalize(parsed)) != fmt.Sprint(normalize(value)) {
			t.Errorf("README says %s defaults to %q, the code says %v", full, cell, value)
		}
		delete(documented, full)
	}
	for key := range documented {
		t.Errorf("README documents %s, which is not a config key", key)
	}
}

// normalize makes numbers comparable (YAML gives int or float64).
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalize(x[i])
		}
		return out
	}
	return v
}
