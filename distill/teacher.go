package distill

import (
	"fmt"
	"reflect"
	"strings"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// TeacherScope holds the frozen teacher's weights: /teacher/... (never trainable).
const TeacherScope = "teacher"

// Teacher is a trained fewstep run used as a frozen teacher: its architecture and schedule (from
// its resolved config) and its checkpoint directory, or an exported model file.
type Teacher struct {
	Dir checkpoints.RunDir
	// File, when set, is an exported model file (fewstep export) read instead of Dir's newest
	// checkpoint; it holds one set of weights, so teacher_ema does not apply. Dir then only names
	// the teacher in messages.
	File      string
	Model     models.Config
	Diffusion models.DiffusionConfig
}

// weights returns the teacher's checkpoint step and tensors: Dir's newest checkpoint, or File's
// weights named as that checkpoint's scope/... (scope ends with "/").
func (t Teacher) weights(scope string) (int64, map[string]*tensors.Tensor, error) {
	if t.File == "" {
		step, ts, _, err := checkpoints.LoadLatest(t.Dir)
		return step, ts, err
	}
	m, err := export.ReadModel(t.File)
	if err != nil {
		return 0, nil, err
	}
	ts := make(map[string]*tensors.Tensor, len(m.Tensors))
	for name, x := range m.Tensors {
		ts[scope+name] = x
	}
	return m.Source.Step, ts, nil
}

// LoadTeacher copies the EMA (useEMA) or raw weights of the teacher's newest checkpoint (or file) into
// /teacher/... of store, non-trainable; with a student config also into /model/... every weight
// the student uses (the student starts as the teacher, pruned by its model.drop_blocks). It
// returns the teacher's checkpoint step.
func LoadTeacher(store *model.Store, t Teacher, useEMA bool, student *models.Config) (int64, error) {
	src := trainer.ModelScope + "/"
	if useEMA {
		src = trainer.EMAScope + "/"
	}
	step, ts, err := t.weights(src)
	if err != nil {
		return 0, fmt.Errorf("distill.teacher: %w", err)
	}
	n := 0
	for name, tensor := range ts {
		rest, ok := strings.CutPrefix(name, src)
		if !ok {
			continue
		}
		v, err := store.CreateVariable("/"+TeacherScope+"/"+rest, tensor)
		if err != nil {
			return 0, fmt.Errorf("distill.teacher %s step %d: tensor %s: %w", t.Dir, step, name, err)
		}
		v.Trainable = false
		if student != nil && student.UsesVariable(rest) {
			clone, err := tensor.LocalClone()
			if err != nil {
				return 0, err
			}
			if _, err := store.CreateVariable("/"+trainer.ModelScope+"/"+rest, clone); err != nil {
				return 0, fmt.Errorf("distill: student init from %s: %w", name, err)
			}
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("distill.teacher %s step %d: no %s* weights in the checkpoint", t.Dir, step, src)
	}
	trainer.MarkTrainable(store)
	return step, nil
}

// SameArchitecture reports the first key where the student's model config differs from the
// teacher's, with both values ("" when equal): a student initialized from the teacher's weights
// needs the same one. Values compare as printed, so an empty list equals an absent one (a config
// read back from YAML has [] where the preset had nothing).
func SameArchitecture(student, teacher models.Config) string {
	sv, tv := reflect.ValueOf(student), reflect.ValueOf(teacher)
	for i := range sv.NumField() {
		if sv.Type().Field(i).Name == "LoRA" { // a LoRA student adapts the teacher's network
			continue
		}
		a, b := fmt.Sprintf("%+v", sv.Field(i).Interface()), fmt.Sprintf("%+v", tv.Field(i).Interface())
		if a != b {
			return fmt.Sprintf("model.%s: the student has %s, the teacher %s", sv.Type().Field(i).Tag.Get("mapstructure"), a, b)
		}
	}
	return ""
}

// nets are the denoisers of a distillation run: the student (/model, initialized from the teacher)
// and the frozen teacher (/teacher) with its U-Net (for feature taps).
type nets struct {
	student, teacher *models.Denoiser
	tNet             models.Backbone
}

// prepareStudent checks that the student can start from the teacher (same architecture up to
// model.drop_blocks, same schedule), loads the teacher into /teacher and the student's initial
// weights (the teacher's, or trainer.init_from's) into /model on a fresh run (a resumed run has
// them in its checkpoint), and builds both denoisers. Every student weight comes from the teacher,
// init_from or the checkpoint: neither network creates variables.
func prepareStudent(store *model.Store, cfg Config, teacher Teacher, job trainer.Job, resumed bool) (nets, error) {
	pruned := job.Model
	pruned.DropBlocks = teacher.Model.DropBlocks
	if key := SameArchitecture(pruned, teacher.Model); key != "" {
		return nets{}, fmt.Errorf("%s; the student starts from the teacher's weights, so its model section must equal the teacher's up to drop_blocks (%s)", key, teacher.Dir)
	}
	if job.Diffusion != teacher.Diffusion {
		return nets{}, fmt.Errorf("diffusion: the student must use the teacher's schedule and parameterization (%s)", teacher.Dir)
	}
	if !resumed {
		init := &job.Model
		if job.Trainer.InitFrom != "" {
			init = nil // the student starts from trainer.init_from instead (e.g. quality-tuning a student)
		}
		if _, err := LoadTeacher(store, teacher, cfg.TeacherEMA, init); err != nil {
			return nets{}, err
		}
		if init == nil {
			if _, err := trainer.InitWeights(store, job.Trainer.InitFrom, job.Trainer.InitEMA, job.Model.UsesVariable); err != nil {
				return nets{}, err
			}
		}
	} else if !hasScope(store, TeacherScope) {
		return nets{}, fmt.Errorf("resume: the checkpoint has no /%s weights", TeacherScope)
	}
	var n nets
	student, sNet, err := models.NewDenoiser(job.Model, job.Diffusion, job.Seed)
	if err != nil {
		return nets{}, err
	}
	sNet.Params().Frozen = true
	if n.teacher, n.tNet, err = models.NewDenoiser(teacher.Model, teacher.Diffusion, job.Seed); err != nil {
		return nets{}, err
	}
	n.tNet.Params().Frozen = true
	n.student = student
	return n, nil
}

func hasScope(store *model.Store, scope string) bool {
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+scope+"/") {
			return true
		}
	}
	return false
}

// teacherSolve runs n guided DDIM steps of the teacher from x at time t down to 0, per example
// (times t·(1 − j/n)), and returns the final x̂0, clipped to [-1, 1] for pixel data (clipData):
// LADD's distillation target (§3.3) and Imagine Flash's shifted-reconstruction target (eq. 7).
// Guidance cfg applies at the steps whose time lies in interval ([lo, hi]; empty: every step).
// x: [B, H, W, C]; t: [B].
func teacherSolve(teacher *models.Denoiser, sc *scopes, x, t, cond *Node, n int, cfg float64, interval []float64, classes int, latent bool) *Node {
	_, x0hat := teacherSteps(teacher, sc, x, t, nil, cond, n, cfg, interval, classes, latent)
	return clipData(x0hat, latent)
}

// clipData bounds an x̂0 to the pixels' [-1, 1]; latents (fewstep data encode rows: unit-variance
// values, a third of them beyond ±1) are not bounded and pass unchanged — clipping them destroys
// what the decoder needs (sampling.Model.Latent).
func clipData(x *Node, latent bool) *Node {
	if latent {
		return x
	}
	return ClipScalar(x, -1, 1)
}

// teacherSteps runs n guided DDIM steps of the teacher from x at time hi to time lo (nil: 0), per
// example (times lo + (hi − lo)·(1 − j/n)), and returns x at lo and the last step's x̂0 (unclipped).
// Each step clips its x̂0 for pixel data, not for latents (clipData). Guidance as teacherSolve's.
// x: [B, H, W, C]; hi, lo: [B].
func teacherSteps(teacher *models.Denoiser, sc *scopes, x, hi, lo, cond *Node, n int, cfg float64, interval []float64, classes int, latent bool) (xLo, x0hat *Node) {
	at := func(f float64) *Node {
		switch {
		case lo == nil:
			return MulScalar(hi, f)
		case f == 1:
			return hi
		case f == 0:
			return lo
		}
		return Add(lo, MulScalar(Sub(hi, lo), f))
	}
	for j := range n {
		tj, s := at(1-float64(j)/float64(n)), at(1-float64(j+1)/float64(n))
		var epsHat, w *Node
		if cfg != 1 {
			w = sampling.GuidanceScale(tj, cfg, interval)
		}
		x0hat, epsHat = sampling.GuidedX0Eps(teacher, sc.get(TeacherScope), x, tj, cond, w, classes, cfg != 1)
		x = sampling.DDIMStep(teacher.Schedule, x, x0hat, epsHat, tj, s, !latent)
	}
	return x, x0hat
}
