package export

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/models"
)

// LoRA adapter files (`fewstep export -lora-only`) use kohya sd-scripts' names and layouts, so the
// tools people share adapters with read them: per adapted layer
//
//	lora_unet_<path>.lora_down.weight   [r, in] (conv: [r, in, k, k])
//	lora_unet_<path>.lora_up.weight     [out, r] (conv: [out, r, 1, 1])
//	lora_unet_<path>.alpha              [] (0-d)
//
// with <path> the layer's path inside the network with "/" written "_" (the caption encoder's
// layers, text/…, as lora_te_<rest>), in PyTorch's [out, in, kh, kw] layouts; the update is
// W += (alpha/r)·up·down. Metadata: KeyLoRAFormat, the lora: section (KeyLoRA) and the base
// the adapters were trained on (KeyLoRABase, KeyLoRABaseSHA256 = WeightsSHA256 of its weights).
const (
	KeyLoRAFormat     = "fewstep.lora_format"
	LoRAFormat        = "fewstep-lora/1"
	KeyLoRA           = "fewstep.lora"
	KeyLoRABase       = "fewstep.lora_base"
	KeyLoRABaseSHA256 = "fewstep.lora_base_sha256"
)

// Adapter is one layer's adapter in fewstep's layouts: Down [..., r] (the layer weight's leading
// axes), Up [r, out].
type Adapter struct {
	Layer    string // path inside the network, e.g. "down0/res0/conv1"
	Down, Up *tensors.Tensor
	Alpha    float64
}

// LoRAFile is an adapter file: its adapters, config and base.
type LoRAFile struct {
	Adapters   []Adapter
	Config     models.LoRAConfig
	Base       string // the run or file the adapters were trained on
	BaseSHA256 string // WeightsSHA256 of the base's weights
	// kohya holds a read file's tensors by kohya layer name until Resolve maps them.
	kohya map[string]*Adapter
}

// KohyaName is the kohya-style name of the layer at path (lora_unet_… or, for the caption
// encoder, lora_te_…).
func KohyaName(layer string) string {
	if rest, ok := strings.CutPrefix(layer, "text/"); ok {
		return "lora_te_" + strings.ReplaceAll(rest, "/", "_")
	}
	return "lora_unet_" + strings.ReplaceAll(layer, "/", "_")
}

// WriteLoRA writes f atomically as a kohya-style safetensors file.
func WriteLoRA(path string, f *LoRAFile) error {
	if len(f.Adapters) == 0 {
		return fmt.Errorf("export: write %s: no adapters", path)
	}
	var named []checkpoints.NamedTensor
	for _, a := range f.Adapters {
		down, up, err := toKohya(a.Down, a.Up)
		if err != nil {
			return fmt.Errorf("export: write %s: %s: %w", path, a.Layer, err)
		}
		k := KohyaName(a.Layer)
		named = append(named, checkpoints.NamedTensor{Name: k + ".lora_down.weight", Tensor: down},
			checkpoints.NamedTensor{Name: k + ".lora_up.weight", Tensor: up},
			checkpoints.NamedTensor{Name: k + ".alpha", Tensor: tensors.FromScalar(float32(a.Alpha))})
	}
	cfg, err := json.Marshal(f.Config)
	if err != nil {
		return err
	}
	md := map[string]string{KeyLoRAFormat: LoRAFormat, KeyLoRA: string(cfg), KeyLoRABase: f.Base, KeyLoRABaseSHA256: f.BaseSHA256, KeyVersion: Version()}
	return checkpoints.WriteSafetensors(path, named, md)
}

// ReadLoRA reads an adapter file written by WriteLoRA (or kohya-style tools: every layer needs
// lora_down.weight, lora_up.weight and alpha). Layer names are resolved against a model by Apply.
func ReadLoRA(path string) (*LoRAFile, error) {
	ts, md, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	if md[KeyFormat] != "" {
		return nil, fmt.Errorf("%s: an exported model, not a LoRA file (export one with -lora-only)", path)
	}
	f := &LoRAFile{Base: md[KeyLoRABase], BaseSHA256: md[KeyLoRABaseSHA256], kohya: map[string]*Adapter{}}
	if raw, ok := md[KeyLoRA]; ok {
		if err := json.Unmarshal([]byte(raw), &f.Config); err != nil {
			return nil, fmt.Errorf("%s: metadata %s: %w", path, KeyLoRA, err)
		}
	}
	for name, t := range ts {
		layer, part, ok := strings.Cut(name, ".")
		if !ok || !(strings.HasPrefix(layer, "lora_unet_") || strings.HasPrefix(layer, "lora_te_")) {
			return nil, fmt.Errorf("%s: tensor %q is not a kohya-style LoRA tensor (lora_unet_<layer>.lora_down.weight, …)", path, name)
		}
		a := f.kohya[layer]
		if a == nil {
			a = &Adapter{Alpha: math.NaN()}
			f.kohya[layer] = a
		}
		switch part {
		case "lora_down.weight":
			a.Down = t
		case "lora_up.weight":
			a.Up = t
		case "alpha":
			if t.Shape().Size() != 1 {
				return nil, fmt.Errorf("%s: tensor %s has shape %s, want a scalar", path, name, t.Shape())
			}
			a.Alpha = float64(tensors.MustCopyFlatData[float32](t)[0])
		default:
			return nil, fmt.Errorf("%s: tensor %q: unknown part %q (want lora_down.weight, lora_up.weight or alpha)", path, name, part)
		}
	}
	for _, layer := range slices.Sorted(maps.Keys(f.kohya)) {
		a := f.kohya[layer]
		if a.Down == nil || a.Up == nil || math.IsNaN(a.Alpha) {
			return nil, fmt.Errorf("%s: layer %s lacks lora_down.weight, lora_up.weight or alpha", path, layer)
		}
	}
	if len(f.kohya) == 0 {
		return nil, fmt.Errorf("%s: no LoRA tensors", path)
	}
	return f, nil
}

// Apply merges the file's adapters into weights (paths inside the network, as in a checkpoint's
// weight set): W += strength·(alpha/r)·down·up for every adapter. A layer the model lacks, or an
// adapter whose shapes do not fit its layer, is refused naming the tensor.
func (f *LoRAFile) Apply(weights map[string]*tensors.Tensor, strength float64) error {
	layers := map[string]string{} // kohya name → weight tensor path
	for name := range weights {
		for _, suffix := range []string{"/weight", "/kernel"} {
			if layer, ok := strings.CutSuffix(name, suffix); ok {
				layers[KohyaName(layer)] = name
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(f.kohya)) {
		a := f.kohya[k]
		wName, ok := layers[k]
		if !ok {
			return fmt.Errorf("lora: tensor %s.lora_down.weight adapts a layer this model does not have (a LoRA of another base?)", k)
		}
		down, up, err := fromKohya(a.Down, a.Up)
		if err != nil {
			return fmt.Errorf("lora: tensor %s.lora_down.weight: %w", k, err)
		}
		r := up.Shape().Dimensions[0]
		merged, err := models.MergeAdapter(weights[wName], down, up, strength*a.Alpha/float64(r))
		if err != nil {
			return fmt.Errorf("lora: tensor %s.lora_down.weight does not fit %s %s: %w", k, wName, weights[wName].Shape(), err)
		}
		weights[wName] = merged
	}
	return nil
}

// toKohya converts fewstep's down [..., r], up [r, out] to PyTorch layouts: linear down [r, in],
// up [out, r]; conv down [r, in, k, k], up [out, r, 1, 1].
func toKohya(down, up *tensors.Tensor) (*tensors.Tensor, *tensors.Tensor, error) {
	dd, ud := down.Shape().Dimensions, up.Shape().Dimensions
	if len(ud) != 2 {
		return nil, nil, fmt.Errorf("lora_up shape %v, want [r, out]", ud)
	}
	r, out := ud[0], ud[1]
	upT := transpose2(tensors.MustCopyFlatData[float32](up), r, out) // [out, r]
	dv := tensors.MustCopyFlatData[float32](down)
	switch len(dd) {
	case 2: // [in, r] → [r, in]
		return tensors.FromFlatDataAndDimensions(transpose2(dv, dd[0], r), r, dd[0]), tensors.FromFlatDataAndDimensions(upT, out, r), nil
	case 4: // [k, k, in, r] → [r, in, k, k]
		kh, kw, in := dd[0], dd[1], dd[2]
		res := make([]float32, len(dv))
		for y := range kh {
			for x := range kw {
				for i := range in {
					for o := range r {
						res[((o*in+i)*kh+y)*kw+x] = dv[((y*kw+x)*in+i)*r+o]
					}
				}
			}
		}
		return tensors.FromFlatDataAndDimensions(res, r, in, kh, kw), tensors.FromFlatDataAndDimensions(upT, out, r, 1, 1), nil
	}
	return nil, nil, fmt.Errorf("lora_down shape %v, want [in, r] or [k, k, in, r]", dd)
}

// fromKohya is toKohya's inverse.
func fromKohya(down, up *tensors.Tensor) (*tensors.Tensor, *tensors.Tensor, error) {
	dd, ud := down.Shape().Dimensions, up.Shape().Dimensions
	if len(ud) == 4 && ud[2] == 1 && ud[3] == 1 {
		ud = ud[:2]
	}
	if len(ud) != 2 || len(dd) == 0 || dd[0] != ud[1] {
		return nil, nil, fmt.Errorf("shapes: lora_down %v, lora_up %v (want [r, …] and [out, r])", down.Shape().Dimensions, up.Shape().Dimensions)
	}
	out, r := ud[0], ud[1]
	upF := tensors.FromFlatDataAndDimensions(transpose2(tensors.MustCopyFlatData[float32](up), out, r), r, out)
	dv := tensors.MustCopyFlatData[float32](down)
	switch len(dd) {
	case 2:
		return tensors.FromFlatDataAndDimensions(transpose2(dv, r, dd[1]), dd[1], r), upF, nil
	case 4:
		in, kh, kw := dd[1], dd[2], dd[3]
		res := make([]float32, len(dv))
		for o := range r {
			for i := range in {
				for y := range kh {
					for x := range kw {
						res[((y*kw+x)*in+i)*r+o] = dv[((o*in+i)*kh+y)*kw+x]
					}
				}
			}
		}
		return tensors.FromFlatDataAndDimensions(res, kh, kw, in, r), upF, nil
	}
	return nil, nil, fmt.Errorf("lora_down shape %v, want [r, in] or [r, in, k, k]", dd)
}

// transpose2 transposes a row-major [rows, cols] matrix.
func transpose2(v []float32, rows, cols int) []float32 {
	out := make([]float32, len(v))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = v[i*cols+j]
		}
	}
	return out
}

// WeightsSHA256 is a content hash of a set of weights: SHA-256 over the sorted names, each with
// its shape and little-endian float32 values — the same for a run's checkpoint weight set and its
// exported file.
func WeightsSHA256(ts map[string]*tensors.Tensor) string {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(ts)) {
		t := ts[name]
		fmt.Fprintf(h, "%s%v;", name, t.Shape().Dimensions)
		vals := tensors.MustCopyFlatData[float32](t)
		buf := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ParseLoRAArg splits a -lora FILE[:strength] argument (strength 1 when absent).
func ParseLoRAArg(arg string) (file string, strength float64, err error) {
	file, s, ok := strings.Cut(arg, ":")
	if !ok {
		return file, 1, nil
	}
	if strength, err = strconv.ParseFloat(s, 64); err != nil || math.IsNaN(strength) || math.IsInf(strength, 0) {
		return "", 0, fmt.Errorf("-lora %s: strength %q is not a number", arg, s)
	}
	return file, strength, nil
}
