package report

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/trainer"
)

// Run is what the report shows of one run directory.
type Run struct {
	Name    string
	Dir     checkpoints.RunDir
	Records []trainer.Record
	Grids   []Image // sample grids over training, by step
	Evals   []Table // RUN/eval/*.csv
	Compare *Image  // RUN/eval/compare.png
	Config  string  // RUN/config.yaml
}

// Image is a PNG file: its label and bytes.
type Image struct {
	Label string
	PNG   []byte
}

// Table is a CSV file's rows (the first is the header).
type Table struct {
	Label string
	Rows  [][]string
}

// MaxGrids is how many sample grids (the newest) a report embeds per run.
const MaxGrids = 8

// Load reads a run directory: metrics.jsonl (required), the newest MaxGrids sample grids,
// eval/*.csv, eval/compare.png and config.yaml (each optional).
func Load(dir string) (Run, error) {
	rd := checkpoints.RunDir(dir)
	r := Run{Name: filepath.Base(filepath.Clean(dir)), Dir: rd}
	var err error
	if r.Records, err = trainer.ReadMetrics(rd.MetricsPath()); err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	grids, _ := filepath.Glob(filepath.Join(rd.SamplesDir(), "*.png"))
	sort.Strings(grids) // step-000000600.png … final.png
	if len(grids) > MaxGrids {
		grids = grids[len(grids)-MaxGrids:]
	}
	for _, g := range grids {
		b, err := os.ReadFile(g)
		if err != nil {
			return r, fmt.Errorf("report: %w", err)
		}
		r.Grids = append(r.Grids, Image{Label: strings.TrimSuffix(filepath.Base(g), ".png"), PNG: b})
	}
	csvs, _ := filepath.Glob(filepath.Join(dir, "eval", "*.csv"))
	for _, c := range csvs {
		t, err := readCSV(c)
		if err != nil {
			return r, err
		}
		r.Evals = append(r.Evals, t)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "eval", "compare.png")); err == nil {
		r.Compare = &Image{Label: "eval/compare.png", PNG: b}
	} else if !errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("report: %w", err)
	}
	if b, err := os.ReadFile(rd.ConfigPath()); err == nil {
		r.Config = string(b)
	}
	return r, nil
}

// Point is one logged value.
type Point struct {
	Step  int
	Value float64
}

// Series are the metric's values of one run.
type Series struct {
	Run    string
	Points []Point
}

// Plot is one metric over steps, a series per run.
type Plot struct {
	Key    string // loss, grad_norm, lr, img_per_s, term/<name>, eval/<name>
	Series []Series
}

// Metrics lists every metric key the records log, in display order: loss, grad_norm, lr,
// img_per_s, then the terms and the evaluations by name.
func Metrics(recs []trainer.Record) []string {
	keys := []string{"loss", "grad_norm", "lr", "img_per_s"}
	terms, evals := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		for k := range r.Terms {
			terms["term/"+k] = true
		}
		for k := range r.Eval {
			evals["eval/"+k] = true
		}
	}
	keys = append(keys, slices.Sorted(maps.Keys(terms))...)
	return append(keys, slices.Sorted(maps.Keys(evals))...)
}

// Value is the metric key of a record, and whether the record logs it.
func Value(r trainer.Record, key string) (float64, bool) {
	switch key {
	case "loss":
		return r.Loss, true
	case "grad_norm":
		return r.GradNorm, true
	case "lr":
		return r.LR, true
	case "img_per_s":
		return r.ImgPerS, r.ImgPerS > 0
	}
	if k, ok := strings.CutPrefix(key, "term/"); ok {
		v, ok := r.Terms[k]
		return v, ok
	}
	if k, ok := strings.CutPrefix(key, "eval/"); ok {
		v, ok := r.Eval[k]
		return v, ok
	}
	return 0, false
}

// Plots builds one plot per metric any run logs, with a series per run that logs it.
func Plots(runs []Run) []Plot {
	seen := map[string]bool{}
	var keys []string
	for _, r := range runs {
		for _, k := range Metrics(r.Records) {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	var plots []Plot
	for _, k := range keys {
		p := Plot{Key: k}
		for _, r := range runs {
			s := Series{Run: r.Name}
			for _, rec := range r.Records {
				if v, ok := Value(rec, k); ok {
					s.Points = append(s.Points, Point{rec.Step, v})
				}
			}
			if len(s.Points) > 0 {
				p.Series = append(p.Series, s)
			}
		}
		if len(p.Series) > 0 {
			plots = append(plots, p)
		}
	}
	return plots
}
