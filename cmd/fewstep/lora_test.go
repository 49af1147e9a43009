package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/configs"
	"github.com/fewstep/fewstep/eval"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/generate"
	"github.com/fewstep/fewstep/internal/engine"
	"github.com/fewstep/fewstep/trainer"
)

// TestLoRAFineTune: a LoRA fine-tune of a base run (lora.rank 2 on the smoke U-Net) trains only
// its adapters — every base weight is bit-identical to the base's after training — and resumes
// exactly; -lora-only writes kohya-style adapters that an independent Python reader lists with
// their shapes and alphas; -merge-lora's file samples like the run's own adapters within 1e-5;
// sample -model BASE -lora FILE draws the merged file's bytes; a LoRA whose shapes do not fit is
// refused naming the tensor; a LoRA run without a base, or exported without a mode, is refused.
func TestLoRAFineTune(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FEWSTEP_CACHE_DIR", dir)
	full := importMNISTTest(t, dir)
	pq := smallSplit(t, full, filepath.Join(dir, "mnist-300.parquet"), 300)
	common := []string{"-set", "data.train=" + pq, "-set", "run.out_dir=" + dir, "-set", "trainer.checkpoint_every=2"}
	if code := run(append([]string{"train", "-config", "smoke", "-set", "run.name=base", "-set", "trainer.steps=4"}, common...)); code != 0 {
		t.Fatalf("train base: exit code %d", code)
	}
	baseDir := filepath.Join(dir, "base")
	if page, err := os.ReadFile(filepath.Join(baseDir, "report.html")); err != nil || !bytes.Contains(page, []byte(`data-key="loss"`)) {
		t.Errorf("training did not refresh RUN/report.html with a loss plot (%v)", err)
	}
	lora := append(common, "-set", "trainer.init_from="+baseDir, "-set", "lora.rank=2", "-set", "lora.alpha=4", "-set", "trainer.steps=4", "-set", "lora.dropout=0.5")
	if code := run(append([]string{"train", "-config", "smoke", "-set", "run.name=nolora-base"}, append(common, "-set", "lora.rank=2")...)); code != 1 {
		t.Errorf("LoRA without trainer.init_from: exit code %d, want 1", code)
	}
	if code := run(append([]string{"train", "-config", "smoke", "-set", "run.name=lora"}, lora...)); code != 0 {
		t.Fatalf("train lora: exit code %d", code)
	}
	loraDir := filepath.Join(dir, "lora")
	init, err := trainer.ReadInitWeights(baseDir, true)
	if err != nil {
		t.Fatal(err)
	}
	_, ts, _, err := checkpoints.LoadLatest(checkpoints.RunDir(loraDir))
	if err != nil {
		t.Fatal(err)
	}
	adapters, moved := 0, 0.0
	for name, t0 := range ts {
		p, ok := strings.CutPrefix(name, trainer.ModelScope+"/")
		if !ok {
			continue
		}
		vals := tensors.MustCopyFlatData[float32](t0)
		if strings.HasSuffix(p, "/lora_up") {
			adapters++
			for _, v := range vals {
				moved = math.Max(moved, math.Abs(float64(v)))
			}
			continue
		}
		if strings.HasSuffix(p, "/lora_down") {
			continue
		}
		if !bytes.Equal(f32bytes(vals), f32bytes(tensors.MustCopyFlatData[float32](init[p]))) {
			t.Errorf("base weight %s changed during LoRA training", p)
		}
	}
	if adapters == 0 || moved == 0 {
		t.Fatalf("LoRA run: %d adapters, max |lora_up| %g: the adapters did not train", adapters, moved)
	}
	// Rank dropout is active: without it the adapters train differently.
	if code := run(append([]string{"train", "-config", "smoke", "-set", "run.name=lora-nodrop"}, append(lora, "-set", "lora.dropout=0")...)); code != 0 {
		t.Fatalf("train lora without dropout: exit code %d", code)
	}
	_, tsNoDrop, _, err := checkpoints.LoadLatest(checkpoints.RunDir(filepath.Join(dir, "lora-nodrop")))
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for name, a := range ts {
		if strings.HasSuffix(name, "/lora_up") && !bytes.Equal(f32bytes(tensors.MustCopyFlatData[float32](a)), f32bytes(tensors.MustCopyFlatData[float32](tsNoDrop[name]))) {
			differ++
		}
	}
	if differ == 0 {
		t.Error("lora.dropout 0.5 trained the same adapters as dropout 0")
	}
	// Exact resume (with rank dropout): 2 steps, stop, resume to 4 = the straight 4-step run.
	if code := run(append([]string{"train", "-config", "smoke", "-set", "run.name=lora-resumed", "-stop-at", "2"}, lora...)); code != 0 {
		t.Fatalf("train lora -stop-at 2: exit code %d", code)
	}
	if code := run([]string{"train", "-resume", filepath.Join(dir, "lora-resumed")}); code != 0 {
		t.Fatalf("train -resume: exit code %d", code)
	}
	_, ts2, _, err := checkpoints.LoadLatest(checkpoints.RunDir(filepath.Join(dir, "lora-resumed")))
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range ts {
		if strings.Contains(name, "lora_") && !bytes.Equal(f32bytes(tensors.MustCopyFlatData[float32](a)), f32bytes(tensors.MustCopyFlatData[float32](ts2[name]))) {
			t.Errorf("resumed LoRA run differs in %s", name)
		}
	}
	// Export: refused without a mode; -lora-only (kohya names); -merge-lora.
	if code := run([]string{"export", "-run", loraDir, "-out", filepath.Join(dir, "x.safetensors")}); code != 2 {
		t.Errorf("export of a LoRA run without -merge-lora/-lora-only: exit code %d, want 2", code)
	}
	loraFile, merged, baseFile := filepath.Join(dir, "adapter.safetensors"), filepath.Join(dir, "merged.safetensors"), filepath.Join(dir, "base.safetensors")
	for _, args := range [][]string{{"-run", loraDir, "-lora-only", "-out", loraFile}, {"-run", loraDir, "-merge-lora", "-out", merged}, {"-run", baseDir, "-out", baseFile}} {
		if code := run(append([]string{"export"}, args...)); code != 0 {
			t.Fatalf("export %v: exit code %d", args, code)
		}
	}
	if _, err := os.Stat(python); err == nil {
		out, err := exec.Command(python, filepath.Join("..", "..", "scripts", "read_safetensors.py"), "--scalars", loraFile).CombinedOutput()
		if err != nil {
			t.Fatalf("python reader: %v\n%s", err, out)
		}
		for _, want := range []string{"  lora_unet_down0_res0_conv1.lora_down.weight F32 [2, 8, 3, 3]", "  lora_unet_down0_res0_conv1.lora_up.weight F32 [8, 2, 1, 1]",
			"  lora_unet_down0_res0_conv1.alpha = 4.0", "  lora_unet_mid_attn_qkv.lora_down.weight F32 [2, 16]", "  lora_unet_mid_attn_qkv.lora_up.weight F32 [48, 2]"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("python reader output lacks %q:\n%s", want, out)
			}
		}
	}
	// The merged file samples like the LoRA run's adapters (graph-applied) within 1e-5.
	g, err := generate.Load(merged)
	if err != nil {
		t.Fatal(err)
	}
	seeds, classes := []uint64{3, 4}, []int{1, 7}
	got, err := g.Generate(classes, seeds, generate.Options{Steps: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg, resolved, err := configs.Load(checkpoints.RunDir(loraDir).ConfigPath(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := cfg.Job(resolved)
	job.Sample.Steps = 2
	backend, err := engine.New()
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	if _, err := trainer.LoadWeights(checkpoints.RunDir(loraDir), -1, store); err != nil {
		t.Fatal(err)
	}
	smp, err := trainer.GridSampler(backend, store, job)
	if err != nil {
		t.Fatal(err)
	}
	want, err := smp.Sample(seeds, []int32{1, 7}, 32, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, s := maxDiff(got, want)
	if d > 1e-5*s {
		t.Fatalf("merged file vs the run's adapters: max difference %g at scale %g", d, s)
	}
	// sample -model BASE -lora FILE = sample -model MERGED.
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	if code := run([]string{"sample", "-model", baseFile, "-lora", loraFile + ":1", "-class", "2", "-n", "4", "-steps", "2", "-out", a}); code != 0 {
		t.Fatalf("sample -lora: exit code %d", code)
	}
	if code := run([]string{"sample", "-model", merged, "-class", "2", "-n", "4", "-steps", "2", "-out", b}); code != 0 {
		t.Fatalf("sample merged: exit code %d", code)
	}
	if !bytes.Equal(readFile(t, a), readFile(t, b)) {
		t.Error("sample -model BASE -lora FILE differs from the merged file's sample")
	}
	if code := run([]string{"eval", "-model", baseFile + "@2", "-lora", loraFile, "-n", "20", "-data-test", pq}); code != 0 {
		t.Errorf("eval -lora: exit code %d", code)
	}
	// Per-run weight files and sampling options (-run DIR@STEPS+lora=FILE+cfg=W+as=NAME): the
	// adapted row equals the global -lora row of the same run, the plain row beside it does not.
	evalRows := func(args ...string) []eval.Row {
		t.Helper()
		if code := run(append([]string{"eval", "-n", "20", "-data-test", pq}, args...)); code != 0 {
			t.Fatalf("eval %v: exit code %d", args, code)
		}
		var res struct{ Rows []eval.Row }
		if err := json.Unmarshal(readFile(t, filepath.Join(baseDir, "eval", "eval.json")), &res); err != nil {
			t.Fatal(err)
		}
		return res.Rows
	}
	global := evalRows("-run", baseDir+"@2", "-lora", loraFile, "-cfg", "1.5")
	per := evalRows("-run", baseDir+"@2+lora="+loraFile+"+cfg=1.5+as=adapted", "-run", baseDir+"@2+cfg=1.5")
	if len(global) != 1 || len(per) != 2 || per[0].Run != "adapted" || global[0].Run != filepath.Base(baseDir)+"+lora" {
		t.Fatalf("eval rows: global %+v, per-run %+v", global, per)
	}
	if per[0].FID != global[0].FID || per[0].CFG != 1.5 || per[1].FID == per[0].FID {
		t.Errorf("per-run +lora: FID %g (global -lora %g, no adapter %g), cfg %g", per[0].FID, global[0].FID, per[1].FID, per[0].CFG)
	}
	for _, bad := range []string{baseDir + "@2+lora", baseDir + "+sampler=nope", baseDir + "+size=3"} {
		if code := run([]string{"eval", "-n", "20", "-data-test", pq, "-run", bad}); code != 2 {
			t.Errorf("eval -run %s: exit code %d, want 2", bad, code)
		}
	}
	// LCM-LoRA of the base (distill.method lcm, lora.rank 2), then both adapters combined at sample
	// time: the LCM-LoRA and the fine-tune's LoRA (λ1·τ_style + λ2·τ_LCM).
	lcmYAML := filepath.Join(dir, "lcm-lora.yaml")
	if err := os.WriteFile(lcmYAML, []byte(`run:
  name: lcm-lora
  out_dir: `+dir+`
data:
  train: `+pq+`
`+smokeModel+`trainer:
  steps: 2
  batch_size: 8
  sample_every: 0
  checkpoint_every: 2
sample:
  sampler: renoise
  steps: 2
  cfg: 1.0
distill:
  method: lcm
  teacher: `+baseDir+`
  student_steps: 2
lcm:
  guidance: 2.0
lora:
  rank: 2
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"distill", "-config", lcmYAML}); code != 0 {
		t.Fatalf("distill lcm with lora: exit code %d", code)
	}
	lcmFile := filepath.Join(dir, "lcm-lora.safetensors")
	if code := run([]string{"export", "-run", filepath.Join(dir, "lcm-lora"), "-lora-only", "-out", lcmFile}); code != 0 {
		t.Fatalf("export -lora-only of the LCM-LoRA: exit code %d", code)
	}
	if code := run([]string{"sample", "-model", baseFile, "-lora", lcmFile + ":1", "-lora", loraFile + ":0.8", "-sampler", "renoise", "-steps", "2", "-cfg", "1",
		"-class", "3", "-n", "2", "-out", filepath.Join(dir, "combined.png")}); code != 0 {
		t.Fatalf("sample with two LoRAs: exit code %d", code)
	}
	// PeRFlow of the base (4 windows, 2 teacher steps each); its ΔW (export -delta) added to the
	// teacher reproduces the student within 1e-5, and applies to the LoRA fine-tune of that teacher.
	pfYAML := filepath.Join(dir, "perflow.yaml")
	pf := strings.NewReplacer("name: lcm-lora", "name: perflow", "method: lcm", "method: perflow", "lcm:\n  guidance: 2.0\nlora:\n  rank: 2\n",
		"perflow:\n  windows: 2\n  teacher_steps: 2\n", "sampler: renoise", "sampler: ddim").Replace(string(readFile(t, lcmYAML)))
	if err := os.WriteFile(pfYAML, []byte(pf), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"distill", "-config", pfYAML}); code != 0 {
		t.Fatalf("distill perflow:\n%s\nexit code %d", pf, code)
	}
	pfDir, deltaFile, pfFile := filepath.Join(dir, "perflow"), filepath.Join(dir, "delta.safetensors"), filepath.Join(dir, "perflow.safetensors")
	for _, args := range [][]string{{"-run", pfDir, "-delta", "-out", deltaFile}, {"-run", pfDir, "-out", pfFile}} {
		if code := run(append([]string{"export"}, args...)); code != 0 {
			t.Fatalf("export %v: exit code %d", args, code)
		}
	}
	gs, err := generate.Load(pfFile)
	if err != nil {
		t.Fatal(err)
	}
	gt, err := generate.Load(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := gt.ApplyDelta(deltaFile, 1); err != nil {
		t.Fatal(err)
	}
	wantPF, err := gs.Generate(classes, seeds, generate.Options{Steps: 2, Sampler: "ddim", CFG: 1})
	if err != nil {
		t.Fatal(err)
	}
	gotPF, err := gt.Generate(classes, seeds, generate.Options{Steps: 2, Sampler: "ddim", CFG: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, s = maxDiff(gotPF, wantPF)
	if d > 1e-5*s || s == 0 {
		t.Fatalf("teacher + ΔW vs the PeRFlow student: max difference %g at scale %g", d, s)
	}
	if code := run([]string{"sample", "-model", merged, "-delta", deltaFile, "-sampler", "ddim", "-steps", "2", "-cfg", "1", "-class", "3", "-n", "2",
		"-out", filepath.Join(dir, "delta-on-finetune.png")}); code != 0 {
		t.Fatalf("sample a fine-tune with the PeRFlow delta: exit code %d", code)
	}
	// An adapter whose shapes do not fit is refused naming the tensor.
	bad := filepath.Join(dir, "bad.safetensors")
	if err := export.WriteLoRA(bad, &export.LoRAFile{Adapters: []export.Adapter{{Layer: "down0/res0/conv1",
		Down: tensors.FromFlatDataAndDimensions(make([]float32, 9*5*2), 3, 3, 5, 2), Up: tensors.FromFlatDataAndDimensions(make([]float32, 16), 2, 8), Alpha: 2}}}); err != nil {
		t.Fatal(err)
	}
	gb, err := generate.Load(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := gb.ApplyLoRA(bad, 1); err == nil || !strings.Contains(err.Error(), "lora_unet_down0_res0_conv1.lora_down.weight") {
		t.Fatalf("misfit adapter: error %v, want one naming lora_unet_down0_res0_conv1.lora_down.weight", err)
	}
}

// f32bytes is the little-endian bytes of v (bit-exact comparison, NaN included).
func f32bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, f := range v {
		b := math.Float32bits(f)
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
	}
	return out
}

const python = "/usr/bin/python3"
