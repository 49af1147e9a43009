package trainer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/fewstep/fewstep/checkpoints"
)

// Record is one line of RUN/metrics.jsonl.
type Record struct {
	Step     int     `json:"step"`
	Loss     float64 `json:"loss"`
	GradNorm float64 `json:"grad_norm"`
	LR       float64 `json:"lr"`
	ImgPerS  float64 `json:"img_per_s"`
	Epoch    int64   `json:"epoch"`
	Elapsed  float64 `json:"elapsed_s"`
	// DataSkipped counts the rows skipped since this process started (undecodable images).
	DataSkipped int64 `json:"data_skipped"`
	// Terms are the named loss terms of distillation methods (e.g. "g_adv", "d_hinge", "t_k2");
	// names with a slash are breakdowns (e.g. "d_gap/mid", "d_acc_real/t0"), logged here but not
	// printed with the progress.
	Terms map[string]float64 `json:"terms,omitempty"`
	// Eval holds the evaluation of this step (trainer.eval_every): fid, precision, recall, …
	Eval map[string]float64 `json:"eval,omitempty"`
}

// metricsLog appends Records to the run's metrics file.
type metricsLog struct {
	f *os.File
}

// openMetrics opens path for appending after dropping lines with step > keepUpTo (steps a crashed
// run logged after its last checkpoint, which a resume will redo).
func openMetrics(path string, keepUpTo int) (*metricsLog, error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	for line := 1; sc.Scan(); line++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if r.Step <= keepUpTo {
			kept.Write(sc.Bytes())
			kept.WriteByte('\n')
		}
	}
	if err := checkpoints.WriteFileAtomic(path, kept.Bytes(), 0o644); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsLog{f: f}, nil
}

func (m *metricsLog) write(r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = m.f.Write(append(line, '\n'))
	return err
}

func (m *metricsLog) Close() error { return m.f.Close() }

// ReadMetrics reads all records of a metrics file.
func ReadMetrics(path string) ([]Record, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Record
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// progress reports training progress: a bar on a terminal, plain periodic lines otherwise
// (progressbar does not detect a non-terminal; gomlx-notes).
type progress struct {
	out   io.Writer
	bar   *progressbar.ProgressBar
	total int
	start time.Time
	first int
	label string
}

func newProgress(out io.Writer, tty bool, first, total int, label string) *progress {
	if label == "" {
		label = "train"
	}
	p := &progress{out: out, total: total, start: time.Now(), first: first, label: label}
	if tty {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(out), progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish())
		_ = p.bar.Set(first)
	}
	return p
}

// update is called after every step; r is non-nil on logging steps.
func (p *progress) update(step int, r *Record) {
	if p.bar != nil {
		if r != nil {
			p.bar.Describe(fmt.Sprintf("%s loss %.4f", p.label, r.Loss))
		}
		_ = p.bar.Set(step)
		return
	}
	if r == nil {
		return
	}
	done := step - p.first
	eta := time.Duration(0)
	if done > 0 {
		eta = time.Duration(float64(time.Since(p.start)) / float64(done) * float64(p.total-step))
	}
	terms := ""
	for _, k := range slices.Sorted(maps.Keys(r.Terms)) {
		if strings.Contains(k, "/") { // breakdowns (e.g. d_gap/mid, d_acc_real/t0) only go to metrics.jsonl
			continue
		}
		terms += fmt.Sprintf("  %s %.4f", k, r.Terms[k])
	}
	fmt.Fprintf(p.out, "step %d/%d  loss %.4f  grad_norm %.3f  lr %.2e%s  %.1f img/s  eta %s\n",
		step, p.total, r.Loss, r.GradNorm, r.LR, terms, r.ImgPerS, eta.Round(time.Second))
}

// message prints a line without breaking the bar.
func (p *progress) message(format string, args ...any) {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintf(p.out, format+"\n", args...)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.out)
	}
}
