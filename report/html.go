package report

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fewstep/fewstep/checkpoints"
)

// colors of the runs' series (overlaid plots), in order.
var colors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// Write renders the report of runs to path (atomic write): a title, the plots (several runs
// overlaid, one color each), then per run its grids, eval tables, comparison image and config.
func Write(path string, runs []Run) error {
	var b bytes.Buffer
	names := make([]string, len(runs))
	for i, r := range runs {
		names[i] = r.Name
	}
	title := "fewstep report: " + strings.Join(names, ", ")
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>\n<style>%s</style></head><body>\n<h1>%s</h1>\n",
		html.EscapeString(title), css, html.EscapeString(title))
	fmt.Fprintf(&b, "<p class=\"meta\">written %s; one plot per logged metric (steps on x)", time.Now().UTC().Format(time.RFC3339))
	if len(runs) > 1 {
		b.WriteString("; runs: ")
		for i, n := range names {
			fmt.Fprintf(&b, "<span style=\"color:%s\">■ %s</span> ", colors[i%len(colors)], html.EscapeString(n))
		}
	}
	b.WriteString("</p>\n<div class=\"plots\">\n")
	for _, p := range Plots(runs) {
		b.WriteString(SVG(p, names))
	}
	b.WriteString("</div>\n")
	for _, r := range runs {
		writeRun(&b, r)
	}
	b.WriteString("</body></html>\n")
	return checkpoints.WriteFileAtomic(path, b.Bytes(), 0o644)
}

const css = `body{font-family:sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}h2{font-size:1.15em;margin-top:2em}
.meta{color:#666;font-size:.9em}.plots{display:flex;flex-wrap:wrap;gap:8px}svg{background:#fff;border:1px solid #ddd}
.grids{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0}figcaption{font-size:.8em;color:#555}
img{image-rendering:pixelated;max-width:420px}table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}pre{background:#f6f6f6;padding:8px;font-size:.8em;max-height:30em;overflow:auto}`

// writeRun writes a run's section: grids over training, eval tables, compare.png, config.
func writeRun(b *bytes.Buffer, r Run) {
	fmt.Fprintf(b, "<h2>%s</h2>\n<p class=\"meta\">%s: %d logged steps</p>\n", html.EscapeString(r.Name), html.EscapeString(string(r.Dir)), len(r.Records))
	if len(r.Grids) > 0 {
		b.WriteString("<h3>Sample grids</h3>\n<div class=\"grids\">\n")
		for _, g := range r.Grids {
			writeImage(b, g)
		}
		b.WriteString("</div>\n")
	}
	for _, t := range r.Evals {
		fmt.Fprintf(b, "<h3>%s</h3>\n<table>\n", html.EscapeString(t.Label))
		for i, row := range t.Rows {
			cell := "td"
			if i == 0 {
				cell = "th"
			}
			b.WriteString("<tr>")
			for _, c := range row {
				fmt.Fprintf(b, "<%s>%s</%s>", cell, html.EscapeString(c), cell)
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</table>\n")
	}
	if r.Compare != nil {
		b.WriteString("<h3>eval/compare.png</h3>\n")
		writeImage(b, *r.Compare)
	}
	if r.Config != "" {
		fmt.Fprintf(b, "<h3>config.yaml</h3>\n<pre>%s</pre>\n", html.EscapeString(r.Config))
	}
}

func writeImage(b *bytes.Buffer, im Image) {
	fmt.Fprintf(b, "<figure><img alt=\"%s\" src=\"data:image/png;base64,%s\"><figcaption>%s</figcaption></figure>\n",
		html.EscapeString(im.Label), base64.StdEncoding.EncodeToString(im.PNG), html.EscapeString(im.Label))
}

// Plot geometry (pixels).
const (
	plotW, plotH                       = 420, 230
	marginL, marginR, marginT, marginB = 58, 10, 22, 30
)

// seriesData is a series as the SVG's <desc> carries it (JSON): the finite points drawn.
type seriesData struct {
	Run    string    `json:"run"`
	Steps  []int     `json:"steps"`
	Values []float64 `json:"values"`
}

// SVG draws one plot: a polyline per series (runs in the order of names, one color each), x the
// step, y linear, or logarithmic when every value is positive and they span more than 100×;
// the drawn points (finite values) are in the element's <desc> as JSON, so the page's data can be
// checked and reused. data-key names the metric.
func SVG(p Plot, names []string) string {
	var data []seriesData
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		d := seriesData{Run: s.Run}
		for _, pt := range s.Points {
			if math.IsNaN(pt.Value) || math.IsInf(pt.Value, 0) {
				continue
			}
			d.Steps, d.Values = append(d.Steps, pt.Step), append(d.Values, pt.Value)
			minX, maxX = math.Min(minX, float64(pt.Step)), math.Max(maxX, float64(pt.Step))
			minY, maxY = math.Min(minY, pt.Value), math.Max(maxY, pt.Value)
		}
		data = append(data, d)
	}
	logY := minY > 0 && maxY/minY > 100
	ty := func(v float64) float64 {
		if logY {
			return math.Log10(v)
		}
		return v
	}
	lo, hi := ty(minY), ty(maxY)
	if !(hi > lo) {
		lo, hi = lo-1, hi+1
		if math.IsInf(lo, 0) || math.IsNaN(lo) {
			lo, hi = 0, 1
		}
	}
	if !(maxX > minX) {
		minX, maxX = minX-1, minX+1
		if math.IsInf(minX, 0) {
			minX, maxX = 0, 1
		}
	}
	x := func(s float64) float64 { return marginL + (s-minX)/(maxX-minX)*(plotW-marginL-marginR) }
	y := func(v float64) float64 { return plotH - marginB - (ty(v)-lo)/(hi-lo)*(plotH-marginT-marginB) }
	desc, _ := json.Marshal(data)
	var b strings.Builder
	scale := ""
	if logY {
		scale = " (log)"
	}
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" data-key=\"%s\">\n<desc>%s</desc>\n", plotW, plotH,
		html.EscapeString(p.Key), html.EscapeString(string(desc)))
	fmt.Fprintf(&b, "<text x=\"%d\" y=\"15\" font-size=\"13\">%s%s</text>\n", marginL, html.EscapeString(p.Key), scale)
	fmt.Fprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", marginL, marginT, plotW-marginL-marginR, plotH-marginT-marginB)
	yv := make([]float64, 5)
	for i := range yv { // y ticks
		yv[i] = lo + float64(i)/4*(hi-lo)
		if logY {
			yv[i] = math.Pow(10, yv[i])
		}
	}
	for i, label := range ticks(yv) {
		yy := plotH - marginB - float64(i)/4*(plotH-marginT-marginB)
		fmt.Fprintf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%s</text>\n",
			marginL, plotW-marginR, yy, yy, marginL-4, yy+3, label)
	}
	for i := range 5 { // x ticks
		s := minX + float64(i)/4*(maxX-minX)
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.0f</text>\n", x(s), plotH-marginB+14, s)
	}
	for _, d := range data {
		color := colors[indexOf(names, d.Run)%len(colors)]
		var pts strings.Builder
		for i := range d.Steps {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(float64(d.Steps[i])), y(d.Values[i]))
		}
		if len(d.Steps) == 1 {
			fmt.Fprintf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x(float64(d.Steps[0])), y(d.Values[0]), color)
			continue
		}
		fmt.Fprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.3\" points=\"%s\"/>\n", color, strings.TrimSpace(pts.String()))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// ticks formats axis labels compactly: three significant digits, more where that would print two
// different ticks alike (a metric that moves between 0.9972 and 0.9995).
func ticks(vs []float64) []string {
	out := make([]string, len(vs))
	for prec := 3; prec <= 9; prec++ {
		seen := map[string]bool{}
		distinct := true
		for i, v := range vs {
			out[i] = tick(v, prec)
			if seen[out[i]] {
				distinct = false
			}
			seen[out[i]] = true
		}
		if distinct {
			break
		}
	}
	return out
}

// tick formats one axis label with prec significant digits (prec 3: the compact default).
func tick(v float64, prec int) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e4 || a < 1e-2:
		return fmt.Sprintf("%.*e", prec-2, v)
	case a >= 100 && prec == 3:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.*g", prec, v)
	}
}

func indexOf(names []string, n string) int {
	for i, m := range names {
		if m == n {
			return i
		}
	}
	return 0
}

// readCSV reads an eval table.
func readCSV(path string) (Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return Table{}, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return Table{}, fmt.Errorf("report: %s: %w", path, err)
	}
	return Table{Label: "eval/" + filepath.Base(path), Rows: rows}, nil
}
