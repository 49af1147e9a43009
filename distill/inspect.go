package distill

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/fewstep/fewstep/trainer"
)

// HeadWindow is the mean of the discriminator heads' logged terms (adversary.discLoss) over one
// span of training steps [First, Last]: overall, per t̂ bucket (TBucketEdges) and per head.
type HeadWindow struct {
	First, Last      int
	AccReal, AccFake float64
	Gap              float64
	// Bucket*[k] are the means over the span's records of d_acc_*/t<k> and d_gap/t<k>, each
	// record weighted by its d_n/t<k> (the bucket's examples in that batch).
	BucketAcc, BucketGap []float64
	// HeadAcc and HeadGap are per tap: (d_acc_real/<tap> + d_acc_fake/<tap>)/2 and d_gap/<tap>.
	HeadAcc, HeadGap map[string]float64
	// StepAccFake[k] and StepGap[k] are the fakes' accuracy and the gap per student timestep
	// (d_acc_fake/s<k>, d_gap/s<k>, weighted by d_n/s<k>; s0 = highest noise); empty when the run
	// did not log them (Imagine Flash, runs before part 12).
	StepAccFake, StepGap []float64
}

// HeadReport splits the records that carry the heads' terms (d_acc_real) into `windows` spans of
// about equal length and averages each span. It fails when no record carries them (not an
// adversarial run, or a run logged before part 12's terms).
func HeadReport(records []trainer.Record, windows int) ([]HeadWindow, error) {
	var rs []trainer.Record
	for _, r := range records {
		if _, ok := r.Terms["d_acc_real"]; ok {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("no discriminator terms (d_acc_real) in the metrics: not a LADD or adversarial run")
	}
	windows = max(1, min(windows, len(rs)))
	nb := len(TBucketEdges) + 1
	out := make([]HeadWindow, windows)
	for w := range windows {
		lo, hi := w*len(rs)/windows, (w+1)*len(rs)/windows
		hw := HeadWindow{First: rs[lo].Step, Last: rs[hi-1].Step, BucketAcc: make([]float64, nb), BucketGap: make([]float64, nb),
			HeadAcc: map[string]float64{}, HeadGap: map[string]float64{}}
		n := float64(hi - lo)
		span := rs[lo:hi]
		for _, r := range span {
			t := r.Terms
			hw.AccReal += t["d_acc_real"] / n
			hw.AccFake += t["d_acc_fake"] / n
			hw.Gap += t["d_gap"] / n
			for name, v := range t {
				if tap, ok := strings.CutPrefix(name, "d_gap/"); ok && !isBucket(tap) {
					hw.HeadGap[tap] += v / n
					hw.HeadAcc[tap] += (t["d_acc_real/"+tap] + t["d_acc_fake/"+tap]) / 2 / n
				}
			}
		}
		for k := range nb {
			b := fmt.Sprintf("t%d", k)
			hw.BucketAcc[k] = countWeighted(span, b, func(t map[string]float64) float64 { return (t["d_acc_real/"+b] + t["d_acc_fake/"+b]) / 2 })
			hw.BucketGap[k] = countWeighted(span, b, func(t map[string]float64) float64 { return t["d_gap/"+b] })
		}
		for k := 0; ; k++ {
			b := fmt.Sprintf("s%d", k)
			if _, ok := rs[lo].Terms["d_n/"+b]; !ok {
				break
			}
			hw.StepAccFake = append(hw.StepAccFake, countWeighted(span, b, func(t map[string]float64) float64 { return t["d_acc_fake/"+b] }))
			hw.StepGap = append(hw.StepGap, countWeighted(span, b, func(t map[string]float64) float64 { return t["d_gap/"+b] }))
		}
		out[w] = hw
	}
	return out, nil
}

// countWeighted is the mean of value over the records, each weighted by d_n/<bucket> (the
// bucket's examples in that batch); NaN when no record has any.
func countWeighted(rs []trainer.Record, bucket string, value func(map[string]float64) float64) float64 {
	var sum, weight float64
	for _, r := range rs {
		c := r.Terms["d_n/"+bucket]
		sum += c * value(r.Terms)
		weight += c
	}
	if weight > 0 {
		return sum / weight
	}
	return math.NaN()
}

// WriteHeadReport prints HeadReport's windows as two Markdown tables (overall and per t̂ bucket;
// per head) for `fewstep distill inspect`.
func WriteHeadReport(w io.Writer, ws []HeadWindow) error {
	var b strings.Builder
	nb := len(TBucketEdges) + 1
	b.WriteString("| steps | acc real | acc fake | gap |")
	edges := append([]float64{0}, TBucketEdges...)
	edges = append(edges, 1)
	for k := range nb {
		fmt.Fprintf(&b, " t̂ %.2g–%.2g acc / gap |", edges[k], edges[k+1])
	}
	b.WriteString("\n|---|---:|---:|---:|" + strings.Repeat("---:|", nb) + "\n")
	for _, hw := range ws {
		fmt.Fprintf(&b, "| %d–%d | %.3f | %.3f | %+.3f |", hw.First, hw.Last, hw.AccReal, hw.AccFake, hw.Gap)
		for k := range nb {
			if math.IsNaN(hw.BucketAcc[k]) {
				b.WriteString(" – |") // no example in this bucket (or a run logged before the buckets)
				continue
			}
			fmt.Fprintf(&b, " %.3f / %+.3f |", hw.BucketAcc[k], hw.BucketGap[k])
		}
		b.WriteString("\n")
	}
	var taps []string
	for tap := range ws[0].HeadAcc {
		taps = append(taps, tap)
	}
	sort.Strings(taps)
	if len(taps) > 0 {
		b.WriteString("\nper head, accuracy / gap:\n\n| steps |")
		for _, tap := range taps {
			fmt.Fprintf(&b, " %s |", tap)
		}
		b.WriteString("\n|---|" + strings.Repeat("---:|", len(taps)) + "\n")
		for _, hw := range ws {
			fmt.Fprintf(&b, "| %d–%d |", hw.First, hw.Last)
			for _, tap := range taps {
				fmt.Fprintf(&b, " %.3f / %+.3f |", hw.HeadAcc[tap], hw.HeadGap[tap])
			}
			b.WriteString("\n")
		}
	}
	if ns := len(ws[0].StepAccFake); ns > 0 {
		b.WriteString("\nfakes per student timestep t_s (s0 = highest noise), accuracy / gap:\n\n| steps |")
		for k := range ns {
			fmt.Fprintf(&b, " s%d |", k)
		}
		b.WriteString("\n|---|" + strings.Repeat("---:|", ns) + "\n")
		for _, hw := range ws {
			fmt.Fprintf(&b, "| %d–%d |", hw.First, hw.Last)
			for k := range ns {
				if k >= len(hw.StepAccFake) || math.IsNaN(hw.StepAccFake[k]) {
					b.WriteString(" – |")
					continue
				}
				fmt.Fprintf(&b, " %.3f / %+.3f |", hw.StepAccFake[k], hw.StepGap[k])
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// isBucket reports whether a term suffix names a t̂ bucket (t0, t1, …) or a student timestep
// (s0, s1, …) rather than a head's tap.
func isBucket(s string) bool {
	if len(s) < 2 || (s[0] != 't' && s[0] != 's') {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
