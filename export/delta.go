package export

import (
	"fmt"
	"maps"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
)

// Weight-delta files (`fewstep export -delta`): ΔW = W_student − W_teacher of a distilled student,
// every weight that differs by path inside the network, F32 in the model's layouts, with metadata
// KeyDeltaFormat and the teacher it was taken against (KeyDeltaBase, KeyDeltaBaseSHA256 =
// WeightsSHA256 of the teacher's weights). PeRFlow's ΔW applied to another fine-tune of the same
// teacher accelerates it (arXiv 2405.07510 §4, "plug-and-play").
const (
	KeyDeltaFormat     = "fewstep.delta_format"
	DeltaFormat        = "fewstep-delta/1"
	KeyDeltaBase       = "fewstep.delta_base"
	KeyDeltaBaseSHA256 = "fewstep.delta_base_sha256"
)

// Delta is a weight-delta file.
type Delta struct {
	Tensors    map[string]*tensors.Tensor
	Base       string
	BaseSHA256 string
}

// WriteDelta writes d atomically.
func WriteDelta(path string, d *Delta) error {
	if len(d.Tensors) == 0 {
		return fmt.Errorf("export: write %s: the delta is empty (the student equals the teacher)", path)
	}
	var named []checkpoints.NamedTensor
	for _, name := range slices.Sorted(maps.Keys(d.Tensors)) {
		named = append(named, checkpoints.NamedTensor{Name: name, Tensor: d.Tensors[name]})
	}
	return checkpoints.WriteSafetensors(path, named, map[string]string{KeyDeltaFormat: DeltaFormat, KeyDeltaBase: d.Base,
		KeyDeltaBaseSHA256: d.BaseSHA256, KeyVersion: Version()})
}

// ReadDelta reads a file written by WriteDelta.
func ReadDelta(path string) (*Delta, error) {
	ts, md, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	if md[KeyDeltaFormat] != DeltaFormat {
		return nil, fmt.Errorf("%s: metadata %s is %q, not %q: not a weight delta (`fewstep export -delta`)", path, KeyDeltaFormat, md[KeyDeltaFormat], DeltaFormat)
	}
	return &Delta{Tensors: ts, Base: md[KeyDeltaBase], BaseSHA256: md[KeyDeltaBaseSHA256]}, nil
}

// Apply adds strength·ΔW to weights (paths inside the network). A tensor the model lacks, or of
// another shape, is refused naming it; weights is unchanged then.
func (d *Delta) Apply(weights map[string]*tensors.Tensor, strength float64) error {
	out := map[string]*tensors.Tensor{}
	for _, name := range slices.Sorted(maps.Keys(d.Tensors)) {
		dt, w := d.Tensors[name], weights[name]
		if w == nil {
			return fmt.Errorf("delta: tensor %s: the model has no such weight (a delta of another base?)", name)
		}
		if !w.Shape().Equal(dt.Shape()) {
			return fmt.Errorf("delta: tensor %s has shape %s, the model's weight %s", name, dt.Shape(), w.Shape())
		}
		wv, dv := tensors.MustCopyFlatData[float32](w), tensors.MustCopyFlatData[float32](dt)
		for i := range wv {
			wv[i] = float32(float64(wv[i]) + strength*float64(dv[i]))
		}
		out[name] = tensors.FromFlatDataAndDimensions(wv, w.Shape().Dimensions...)
	}
	maps.Copy(weights, out)
	return nil
}

// Diff is ΔW = student − base for every weight of student whose values differ from base's (both
// keyed by path inside the network); a weight of student that base lacks or shapes differently is
// an error naming it.
func Diff(student, base map[string]*tensors.Tensor) (map[string]*tensors.Tensor, error) {
	out := map[string]*tensors.Tensor{}
	for name, s := range student {
		b := base[name]
		if b == nil || !b.Shape().Equal(s.Shape()) {
			return nil, fmt.Errorf("delta: the teacher has no weight %s of shape %s", name, s.Shape())
		}
		sv, bv := tensors.MustCopyFlatData[float32](s), tensors.MustCopyFlatData[float32](b)
		d := make([]float32, len(sv))
		nonzero := false
		for i := range sv {
			d[i] = sv[i] - bv[i]
			nonzero = nonzero || d[i] != 0
		}
		if nonzero {
			out[name] = tensors.FromFlatDataAndDimensions(d, s.Shape().Dimensions...)
		}
	}
	return out, nil
}
