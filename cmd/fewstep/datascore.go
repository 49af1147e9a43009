package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/eval"
	"github.com/fewstep/fewstep/internal/engine"
)

// scorerNames lists the -scorer values of `data score`.
const scorerNames = "classifier, classifier-margin, sharpness, column:NAME"

// scoreData writes a copy of a dataset with its score column set by a scorer (Emu-style
// quality tuning, arXiv 2309.15807: curate a small high-quality subset by score).
func scoreData(args []string) error {
	const cmd = "data score"
	fs := newFlagSet(cmd, cmd+" -data IN.parquet -scorer "+strings.ReplaceAll(scorerNames, ", ", "|")+" -out OUT.parquet [-config NAME|FILE] [-classifier-data TRAIN.parquet] [-classifier-test TEST.parquet]")
	in := fs.String("data", "", "input Parquet file (required)")
	name := fs.String("scorer", "", "score: "+scorerNames+" (required)")
	out := fs.String("out", "", "output Parquet file (required; may be the input)")
	config := fs.String("config", "mnist-teacher", "classifier scorers: run config whose data section describes the classifier's dataset (image size, channels, classes, splits)")
	train := fs.String("classifier-data", "", "classifier scorers: the classifier's training split (default: the config's data.train)")
	test := fs.String("classifier-test", "", "classifier scorers: the classifier's test split (default: the config's data.test)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	switch {
	case *in == "":
		return usagef("%s: -data is required", cmd)
	case *out == "":
		return usagef("%s: -out is required", cmd)
	}
	scorer, err := newScorer(cmd, *name, *config, *train, *test)
	if err != nil {
		return err
	}
	t0 := time.Now()
	sum, err := data.ScoreFile(*in, *out, scorer, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Printf("scored %d rows of %s with %s (%d scores, %d null) into %s (%.1fs)\n%s\n",
		sum.Rows, *in, *name, len(sum.Scores), sum.Rows-len(sum.Scores), *out, time.Since(t0).Seconds(), sum.Quantiles())
	return nil
}

// newScorer returns the scorer named by -scorer (usage errors name the flag).
func newScorer(cmd, name, config, train, test string) (data.Scorer, error) {
	switch {
	case name == "sharpness":
		return data.SharpnessScorer, nil
	case strings.HasPrefix(name, "column:"):
		col := strings.TrimPrefix(name, "column:")
		if col == "" {
			return nil, usagef("%s: -scorer column:NAME: NAME is empty", cmd)
		}
		return data.ColumnScorer(col), nil
	case name == "classifier" || name == "classifier-margin":
		cfg, _, err := configs.Load(config, nil, os.Environ())
		if err != nil {
			return nil, err
		}
		dc := cfg.Data
		if train != "" {
			dc.Train = train
		}
		if test != "" {
			dc.Test = test
		}
		return classifierScorer(dc, name == "classifier-margin"), nil
	case name == "":
		return nil, usagef("%s: -scorer is required (%s)", cmd, scorerNames)
	}
	return nil, usagef("%s: -scorer %q: unknown scorer (available: %s)", cmd, name, scorerNames)
}

// classifierScorer scores each image by the feature classifier of dataset dc (eval.ClassifierFor:
// loaded from the cache, else trained and cached) as the probability of its labelled class, or
// with margin as that probability minus the largest other one. Unlabelled rows get a null
// score. The labels are checked before the classifier is loaded (or trained), so a file
// without labels fails at once, naming it.
func classifierScorer(dc data.Config, margin bool) data.Scorer {
	var backend compute.Backend
	var tc *eval.TrainedClassifier
	return func(g *data.ScoreGroup) ([]float32, []bool, error) {
		labels, valid, err := g.Labels()
		if err != nil {
			return nil, nil, fmt.Errorf("%w (the classifier scorers need labels)", err)
		}
		if tc == nil {
			if backend, err = engine.New(); err != nil {
				return nil, nil, err
			}
			if tc, err = eval.ClassifierFor(backend, dc, os.Stdout); err != nil {
				return nil, nil, err
			}
			fmt.Printf("feature classifier %s: test accuracy %.2f%%\n", tc.Path, 100*tc.TestAccuracy)
		}
		if k := len(g.ClassNames); k > 0 && k != tc.NumClasses {
			return nil, nil, fmt.Errorf("data: %s: %d class names, the classifier of %s has %d classes (set -config or -classifier-data)", g.Path, k, dc.Train, tc.NumClasses)
		}
		imgs, err := g.Images(dc.ImageSize, dc.Channels)
		if err != nil {
			return nil, nil, err
		}
		probs, err := tc.Probabilities(backend, imgs, g.Rows, dc.ImageSize, dc.ImageSize, dc.Channels)
		if err != nil {
			return nil, nil, fmt.Errorf("data: %s: rows %d to %d: %w", g.Path, g.FirstRow, g.FirstRow+int64(g.Rows)-1, err)
		}
		k := tc.NumClasses
		scores := make([]float32, g.Rows)
		for i := range g.Rows {
			if !valid[i] {
				continue
			}
			if l := labels[i]; l < 0 || int(l) >= k {
				return nil, nil, fmt.Errorf("data: %s: column %s, row %d: label %d out of the classifier's range [0, %d)", g.Path, data.ColLabel, g.FirstRow+int64(i), l, k)
			}
			p := probs[i*k : (i+1)*k]
			if margin {
				scores[i] = eval.ClassMargin(p, int(labels[i]))
			} else {
				scores[i] = eval.ClassConfidence(p, int(labels[i]))
			}
		}
		return scores, valid, nil
	}
}

// curationFlags are the -top-k, -per-class and -min-score flags of `data inspect` and `data grid`.
type curationFlags struct {
	topK     *int
	perClass *bool
	minScore *float64
	fs       *flag.FlagSet
}

func addCurationFlags(fs *flag.FlagSet) *curationFlags {
	return &curationFlags{
		topK:     fs.Int("top-k", 0, "preview data.top_k: keep the K highest-scoring rows (0: off)"),
		perClass: fs.Bool("per-class", false, "preview data.top_k_per_class: -top-k per class"),
		minScore: fs.Float64("min-score", 0, "preview data.min_score (with data.use_min_score): keep rows with score >= S"),
		fs:       fs,
	}
}

// curation returns the settings (after parsing; -min-score counts when given), validated.
func (f *curationFlags) curation(cmd string) (data.Curation, error) {
	c := data.Curation{TopK: *f.topK, PerClass: *f.perClass, MinScore: *f.minScore, UseMinScore: flagGiven(f.fs, "min-score")}
	if err := c.Validate(); err != nil {
		return c, usagef("%s: %v", cmd, strings.NewReplacer("data.top_k_per_class", "-per-class", "data.top_k", "-top-k", "data.min_score", "-min-score").Replace(err.Error()))
	}
	return c, nil
}
