package trainer

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/export"
)

// ReadInitWeights reads the network weights of trainer.init_from: a run directory (its newest
// checkpoint), a .safetensors checkpoint file, or an exported model file (fewstep export,
// validated by export.Parse; it holds one set of weights, so useEMA does not apply). It returns
// them keyed by their path inside the network ("down0/res0/conv1/kernel"): a checkpoint's ema/*
// tensors with useEMA (model/* when it has none), else model/*.
func ReadInitWeights(src string, useEMA bool) (map[string]*tensors.Tensor, error) {
	var ts map[string]*tensors.Tensor
	var md map[string]string
	var err error
	if st, serr := os.Stat(src); serr == nil && st.IsDir() {
		_, ts, _, err = checkpoints.LoadLatest(checkpoints.RunDir(src))
	} else if strings.HasSuffix(src, ".safetensors") {
		if ts, md, err = checkpoints.ReadSafetensors(src); err == nil && export.IsExport(md) {
			m, err := export.Parse(ts, md)
			if err != nil {
				return nil, fmt.Errorf("trainer.init_from %s: %w", src, err)
			}
			return m.Tensors, nil
		}
	} else {
		err = fmt.Errorf("neither a run directory nor a .safetensors file")
	}
	if err != nil {
		return nil, fmt.Errorf("trainer.init_from %s: %w", src, err)
	}
	pick := func(prefix string) map[string]*tensors.Tensor {
		out := map[string]*tensors.Tensor{}
		for name, t := range ts {
			if rest, ok := strings.CutPrefix(name, prefix+"/"); ok {
				out[rest] = t
			}
		}
		return out
	}
	w := pick(ModelScope)
	if useEMA {
		if e := pick(EMAScope); len(e) > 0 {
			w = e
		}
	}
	if len(w) == 0 {
		return nil, fmt.Errorf("trainer.init_from %s: no %s/* or %s/* weights", src, ModelScope, EMAScope)
	}
	return w, nil
}

// InitWeights creates /model/<path> in store from trainer.init_from for every path that keep
// accepts (nil: all), and returns how many it created.
func InitWeights(store *model.Store, src string, useEMA bool, keep func(path string) bool) (int, error) {
	w, err := ReadInitWeights(src, useEMA)
	if err != nil {
		return 0, err
	}
	n := 0
	for path, t := range w {
		if keep != nil && !keep(path) {
			continue
		}
		if _, err := store.CreateVariable("/"+ModelScope+"/"+path, t); err != nil {
			return 0, fmt.Errorf("trainer.init_from %s: tensor %s: %w", src, path, err)
		}
		n++
	}
	MarkTrainable(store)
	return n, nil
}
