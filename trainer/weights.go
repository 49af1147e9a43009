package trainer

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
)

// LoadWeights loads the weights (and EMA) of checkpoint `step` of run into store for inference;
// step < 0 means the newest. Optimizer moments are skipped. Returns the step loaded.
func LoadWeights(run checkpoints.RunDir, step int64, store *model.Store) (int64, error) {
	var err error
	var ts map[string]*tensors.Tensor
	if step < 0 {
		step, ts, _, err = checkpoints.LoadLatest(run)
	} else {
		ts, _, err = checkpoints.LoadStep(run, step)
	}
	if err != nil {
		return 0, err
	}
	for name, t := range ts {
		if strings.HasPrefix(name, OptScope+"/") {
			continue
		}
		v, err := store.CreateVariable("/"+name, t)
		if err != nil {
			return 0, fmt.Errorf("%s step %d: tensor %s: %w", run.CheckpointDir(), step, name, err)
		}
		v.Trainable = false
	}
	return step, nil
}
