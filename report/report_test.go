package report

import (
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/trainer"
)

// fakeRun writes a run directory: metrics.jsonl with loss, grad_norm, lr, img_per_s, LADD-style
// terms (with a per-bucket breakdown) and an evaluation every other record; a sample grid, an eval
// table and the config.
func fakeRun(t *testing.T, dir string, scale float64) []trainer.Record {
	t.Helper()
	rd := checkpoints.RunDir(dir)
	if err := os.MkdirAll(rd.SamplesDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "eval"), 0o755); err != nil {
		t.Fatal(err)
	}
	var recs []trainer.Record
	var lines []string
	for i := 1; i <= 6; i++ {
		r := trainer.Record{Step: 20 * i, Loss: scale / float64(i), GradNorm: 0.5 + 0.1*float64(i), LR: 1e-3, ImgPerS: 100 + float64(i),
			Terms: map[string]float64{"g_adv": -0.1 * float64(i), "d_acc/t0": 0.5 + 0.05*float64(i)}}
		if i%2 == 0 {
			r.Eval = map[string]float64{"fid": 30 / float64(i)}
		}
		recs = append(recs, r)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	for name, body := range map[string]string{
		rd.MetricsPath():                       strings.Join(lines, "\n") + "\n",
		rd.SamplePath(120):                     "\x89PNG fake",
		filepath.Join(dir, "eval", "eval.csv"): "run,steps,fid\nx,4,12.5\n",
		rd.ConfigPath():                        "run:\n  name: x <y>\n",
	} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

// TestReportData: every metric key of metrics.jsonl (loss, grad_norm, lr, img_per_s, each term
// including breakdowns, each eval metric) has a plot whose embedded points equal the logged values,
// one series per run when two runs overlay; grids, eval tables and the config (escaped) are in the
// page.
func TestReportData(t *testing.T) {
	dir := t.TempDir()
	recsA := fakeRun(t, filepath.Join(dir, "a"), 1)
	recsB := fakeRun(t, filepath.Join(dir, "b"), 2)
	var runs []Run
	for _, n := range []string{"a", "b"} {
		r, err := Load(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	out := filepath.Join(dir, "report.html")
	if err := Write(out, runs); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<svg [^>]*data-key="([^"]+)">\s*<desc>(.*?)</desc>`)
	plots := map[string][]seriesData{}
	for _, m := range re.FindAllStringSubmatch(string(page), -1) {
		var d []seriesData
		if err := json.Unmarshal([]byte(html.UnescapeString(m[2])), &d); err != nil {
			t.Fatalf("plot %s: %v", m[1], err)
		}
		plots[html.UnescapeString(m[1])] = d
	}
	keys := Metrics(recsA)
	if want := []string{"loss", "grad_norm", "lr", "img_per_s", "term/d_acc/t0", "term/g_adv", "eval/fid"}; strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("metric keys %v, want %v", keys, want)
	}
	for _, k := range keys {
		d, ok := plots[k]
		if !ok {
			t.Errorf("no plot for %s", k)
			continue
		}
		if len(d) != 2 || d[0].Run != "a" || d[1].Run != "b" {
			t.Errorf("plot %s: series %+v, want runs a and b", k, d)
			continue
		}
		for i, recs := range [][]trainer.Record{recsA, recsB} {
			var steps []int
			var values []float64
			for _, r := range recs {
				if v, ok := Value(r, k); ok {
					steps, values = append(steps, r.Step), append(values, v)
				}
			}
			if !slices.Equal(d[i].Steps, steps) || !slices.Equal(d[i].Values, values) {
				t.Errorf("plot %s, run %s: %v %v, logged %v %v", k, d[i].Run, d[i].Steps, d[i].Values, steps, values)
			}
		}
	}
	for _, want := range []string{"data:image/png;base64,", "<th>fid</th>", "<td>12.5</td>", "name: x &lt;y&gt;", "step-000000120"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestTicksDistinct: axis labels keep three significant digits where they differ and take more
// where three would print two ticks alike (class accuracy between 0.997 and 1).
func TestTicksDistinct(t *testing.T) {
	got := ticks([]float64{0.997, 0.99775, 0.9985, 0.99925, 1})
	want := []string{"0.997", "0.9978", "0.9985", "0.9992", "1"} // four digits are enough
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ticks = %q, want %q", got, want)
		}
	}
	got = ticks([]float64{0, 0.25, 0.5, 0.75, 1})
	want = []string{"0", "0.25", "0.5", "0.75", "1"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ticks = %q, want %q", got, want)
		}
	}
	if got := ticks([]float64{120, 130.5, 141, 151.5, 162}); got[0] != "120" || got[1] == got[2] {
		t.Fatalf("ticks = %q", got)
	}
}
