package trainer

import (
	"fmt"
	"strconv"
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

// ResolveCheckpoint maps a checkpoint choice to the step LoadWeights takes: "" or "newest" → −1
// (the newest), "best" → the step in RUN/best.json (early stopping), or a step number.
func ResolveCheckpoint(run checkpoints.RunDir, spec string) (int64, error) {
	switch spec {
	case "", "newest":
		return -1, nil
	case "best":
		b, ok, err := checkpoints.ReadBest(run)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("%s: no best checkpoint (the run has no evaluations: trainer.eval_every)", run)
		}
		return b.Step, nil
	}
	step, err := strconv.ParseInt(spec, 10, 64)
	if err != nil || step < 0 {
		return 0, fmt.Errorf("checkpoint %q: want newest, best or a step number", spec)
	}
	return step, nil
}
