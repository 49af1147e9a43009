package distill

import (
	"math"
	"strings"
	"testing"

	"github.com/fewstep/fewstep/trainer"
)

// TestHeadReport: windows average their records, buckets weight each record by its bucket count,
// records without heads' terms are skipped, and a run without any is an error.
func TestHeadReport(t *testing.T) {
	rec := func(step int, accR, accF, gap float64, n0, acc0, gap0 float64) trainer.Record {
		return trainer.Record{Step: step, Terms: map[string]float64{
			"d_acc_real": accR, "d_acc_fake": accF, "d_gap": gap,
			"d_n/t0": n0, "d_acc_real/t0": acc0, "d_acc_fake/t0": acc0, "d_gap/t0": gap0,
			"d_n/t1": 0, "d_n/t2": 0, "d_n/t3": 0,
			"d_n/s0": n0, "d_acc_fake/s0": acc0, "d_gap/s0": gap0,
			"d_acc_real/mid": accR, "d_acc_fake/mid": accF, "d_gap/mid": gap}}
	}
	recs := []trainer.Record{{Step: 5, Terms: map[string]float64{"g_adv": 1}},
		rec(10, 0.6, 0.4, 0.2, 1, 1, 3), rec(20, 0.8, 0.6, 0.4, 3, 0.5, -1),
		rec(30, 1, 1, 1, 2, 0.25, 2), rec(40, 0, 0, -1, 2, 0.75, 4)}
	ws, err := HeadReport(recs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].First != 10 || ws[0].Last != 20 || ws[1].First != 30 || ws[1].Last != 40 {
		t.Fatalf("windows %+v", ws)
	}
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	near("acc real", ws[0].AccReal, 0.7)
	near("acc fake", ws[0].AccFake, 0.5)
	near("gap", ws[0].Gap, 0.3)
	near("bucket acc", ws[0].BucketAcc[0], (1*1+3*0.5)/4)
	near("bucket gap", ws[0].BucketGap[0], (1*3+3*-1)/4.0)
	near("bucket acc w1", ws[1].BucketAcc[0], 0.5)
	near("head acc", ws[0].HeadAcc["mid"], 0.6)
	near("head gap", ws[1].HeadGap["mid"], 0)
	if !math.IsNaN(ws[0].BucketAcc[1]) {
		t.Errorf("an empty bucket reports %g, want NaN", ws[0].BucketAcc[1])
	}
	if len(ws[0].StepAccFake) != 1 {
		t.Fatalf("student timesteps %v, want 1", ws[0].StepAccFake)
	}
	near("student step acc", ws[0].StepAccFake[0], (1*1+3*0.5)/4)
	near("student step gap", ws[1].StepGap[0], (2*2+2*4)/4.0)
	if _, ok := ws[0].HeadAcc["s0"]; ok {
		t.Error("a student timestep was taken for a head")
	}
	if _, ok := ws[0].HeadAcc["t0"]; ok {
		t.Error("a bucket was taken for a head")
	}
	var b strings.Builder
	if err := WriteHeadReport(&b, ws); err != nil || !strings.Contains(b.String(), "| 10–20 | 0.700 | 0.500 | +0.300 |") {
		t.Errorf("report (%v):\n%s", err, b.String())
	}
	if _, err := HeadReport(recs[:1], 2); err == nil {
		t.Error("a run without heads' terms gave no error")
	}
}
