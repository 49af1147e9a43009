package eval

import (
	"fmt"
	"os"
	"strings"

	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
)

// Prompt sets of Options.Prompts for text models (besides a prompt file).
const (
	PromptsNames     = "names"     // each class's name ("seven", "Ankle boot")
	PromptsTemplates = "templates" // each class's caption templates in turn (data.MNISTCaptions…)
)

// promptCond builds the condition rows of a text model for the balanced classes of an eval:
// image i of class c gets its class name (PromptsNames, the default), the (i/k)-th of its caption
// templates in turn (PromptsTemplates, k classes), or — set is a file of prompts, one a line, each
// naming a class (data.ClassOfPrompt) — the prompts of that file in turn, classes following them.
// It returns the condition and the class of each image (what class accuracy scores).
func promptCond(mc models.Config, set string, classes []int32) ([]int32, []int32, error) {
	names := mc.Text.ClassNames
	if len(names) != mc.NumClasses {
		return nil, nil, fmt.Errorf("prompts: the model's config has %d class names for %d classes (model.text.class_names comes from the training data's metadata)", len(names), mc.NumClasses)
	}
	templates, hasTemplates := data.CaptionTemplatesOf(names)
	prompts := make([]string, len(classes))
	out := append([]int32(nil), classes...)
	switch set {
	case "", PromptsNames:
		for i, c := range classes {
			prompts[i] = names[c]
		}
	case PromptsTemplates:
		if !hasTemplates {
			return nil, nil, fmt.Errorf("prompts: templates: the training data's classes %v have no caption templates (MNIST and Fashion-MNIST do)", names)
		}
		k := mc.NumClasses
		for i, c := range classes {
			ts := templates(int(c))
			prompts[i] = ts[(i/k)%len(ts)]
		}
	default:
		text, err := os.ReadFile(set)
		if err != nil {
			return nil, nil, fmt.Errorf("prompts: %w", err)
		}
		var lines []string
		var lineClass []int32
		for n, line := range strings.Split(string(text), "\n") {
			if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			c, ok := data.ClassOfPrompt(names, templates, line)
			if !ok {
				return nil, nil, fmt.Errorf("prompts: %s line %d: %q names no class of %v (or several): eval scores prompted class accuracy, so every prompt must name one", set, n+1, line, names)
			}
			lines, lineClass = append(lines, line), append(lineClass, int32(c))
		}
		if len(lines) == 0 {
			return nil, nil, fmt.Errorf("prompts: %s has no prompts", set)
		}
		for i := range prompts {
			prompts[i], out[i] = lines[i%len(lines)], lineClass[i%len(lines)]
		}
	}
	cond, unknown, err := sampling.PromptCond(mc, prompts, out)
	if err != nil {
		return nil, nil, err
	}
	if len(unknown) > 0 {
		return nil, nil, fmt.Errorf("prompts: words outside the model's vocabulary: %s", strings.Join(unknown, ", "))
	}
	return cond, out, nil
}
