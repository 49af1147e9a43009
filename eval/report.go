package eval

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/sampling"
)

// Markdown renders the rows as a Markdown table.
func Markdown(res *Result) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| run | steps | sampler | schedule | cfg | NFE | n | FID | class acc | precision | recall | conf | ms/img | img/s | batch | backend |\n")
	fmt.Fprintf(&b, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range res.Rows {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %g | %d | %d | %.3f | %.4f | %.3f | %.3f | %.4f | %.2f | %.1f | %d | %s |\n",
			r.Run, r.Steps, r.Sampler, r.Schedule, r.CFG, r.NFE, r.N, r.FID, r.ClassAcc, r.Precision, r.Recall, r.Confidence, r.MsPerImage, r.ImgPerS, r.Batch, r.Backend)
	}
	fmt.Fprintf(&b, "\nfeature classifier test accuracy: %.2f%% (FID uses its %d semantic and texture features, precision and recall the %d semantic ones; not comparable with Inception FIDs)\n",
		100*res.ClassifierAcc, FeatureDim, SemanticDim)
	return b.String()
}

// WriteCSV writes the rows to path atomically.
func WriteCSV(path string, res *Result) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"run", "steps", "sampler", "schedule", "cfg", "nfe", "n", "fid", "class_accuracy", "precision", "recall", "confidence", "ms_per_image", "img_per_s", "batch", "backend"})
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 8, 64) }
	for _, r := range res.Rows {
		_ = w.Write([]string{r.Run, strconv.Itoa(r.Steps), r.Sampler, r.Schedule, f(r.CFG), strconv.Itoa(r.NFE), strconv.Itoa(r.N), f(r.FID), f(r.ClassAcc),
			f(r.Precision), f(r.Recall), f(r.Confidence), f(r.MsPerImage), f(r.ImgPerS), strconv.Itoa(r.Batch), r.Backend})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return checkpoints.WriteFileAtomic(path, b.Bytes(), 0o644)
}

// WriteJSON writes the rows and the classifier accuracy to path atomically.
func WriteJSON(path string, res *Result) error {
	out, err := json.MarshalIndent(struct {
		ClassifierTestAccuracy float64 `json:"classifier_test_accuracy"`
		Rows                   []Row   `json:"rows"`
	}{res.ClassifierAcc, res.Rows}, "", "  ")
	if err != nil {
		return err
	}
	return checkpoints.WriteFileAtomic(path, append(out, '\n'), 0o644)
}

// WriteComparison draws the comparison grid: one row per (run, steps) setting, the same seeds in
// every column.
func WriteComparison(path string, res *Result) error {
	var all []float32
	for _, imgs := range res.Compare {
		all = append(all, imgs...)
	}
	per := res.H * res.W * res.C
	if per == 0 || len(res.Compare) == 0 {
		return fmt.Errorf("eval: nothing to compare")
	}
	cols := len(res.Compare[0]) / per
	return sampling.WriteGrid(path, all, len(all)/per, res.H, res.W, res.C, cols)
}
