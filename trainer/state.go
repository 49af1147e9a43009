package trainer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
)

// Checkpoint metadata keys (safetensors __metadata__).
const (
	MetaFormat   = "fewstep.format"
	MetaRNG      = "fewstep.rng_pcg"
	MetaData     = "fewstep.data_position"
	MetaConfig   = "fewstep.config_yaml"
	MetaEval     = "fewstep.eval_state"
	formatTrain1 = "fewstep-train-state-v1"
)

// hostState is the training state that lives on the host: with the store's variables (weights,
// EMA, AdamW moments) it is everything needed to resume exactly.
type hostState struct {
	Step int           // optimizer steps done
	PCG  *rand.PCG     // source of t, eps and condition dropout
	Data data.Position // loader position
	Eval evalState     // early stopping
}

// evalState is the early-stopping state: the best evaluation so far and the evaluations since.
type evalState struct {
	BestStep int     `json:"best_step"` // 0: no evaluation yet
	Best     float64 `json:"best"`
	Stale    int     `json:"stale"` // evaluations since the best one
}

// update records an evaluation of value v at step.
func (e *evalState) update(step int, v float64, lowerIsBetter bool) {
	better := e.BestStep == 0 || (lowerIsBetter && v < e.Best) || (!lowerIsBetter && v > e.Best)
	if better {
		e.BestStep, e.Best, e.Stale = step, v, 0
		return
	}
	e.Stale++
}

// writeBest records the best checkpoint in RUN/best.json (kept by checkpoint pruning).
func writeBest(run checkpoints.RunDir, e evalState, metric string) error {
	b, err := json.MarshalIndent(checkpoints.Best{Step: int64(e.BestStep), Metric: metric, Value: e.Best}, "", "  ")
	if err != nil {
		return err
	}
	return checkpoints.WriteFileAtomic(run.BestPath(), append(b, '\n'), 0o644)
}

// saveState writes all variables of store and the host state as checkpoint ckpt-<step>.
func saveState(run checkpoints.RunDir, store *model.Store, hs hostState, configYAML []byte, keep int) (string, error) {
	var ts []checkpoints.NamedTensor
	for v := range store.IterVariables() {
		val, err := v.Value()
		if err != nil {
			return "", fmt.Errorf("checkpoint: variable %s: %w", v.Path(), err)
		}
		ts = append(ts, checkpoints.NamedTensor{Name: strings.TrimPrefix(v.Path(), "/"), Tensor: val})
	}
	rng, err := hs.PCG.MarshalBinary()
	if err != nil {
		return "", err
	}
	pos, err := json.Marshal(hs.Data)
	if err != nil {
		return "", err
	}
	ev, err := json.Marshal(hs.Eval)
	if err != nil {
		return "", err
	}
	meta := map[string]string{
		MetaFormat: formatTrain1,
		MetaRNG:    base64.StdEncoding.EncodeToString(rng),
		MetaData:   string(pos),
		MetaConfig: string(configYAML),
		MetaEval:   string(ev),
	}
	return checkpoints.Save(run, int64(hs.Step), ts, meta, keep)
}

// restoreState loads the newest checkpoint of run into store (which must be empty of those
// variables) and returns the host state.
func restoreState(run checkpoints.RunDir, store *model.Store) (hostState, error) {
	step, ts, meta, err := checkpoints.LoadLatest(run)
	if err != nil {
		return hostState{}, err
	}
	where := fmt.Sprintf("%s step %d", run.CheckpointDir(), step)
	if meta[MetaFormat] != formatTrain1 {
		return hostState{}, fmt.Errorf("%s: not a training checkpoint (format %q)", where, meta[MetaFormat])
	}
	for name, t := range ts {
		if _, err := store.CreateVariable("/"+name, t); err != nil {
			return hostState{}, fmt.Errorf("%s: tensor %s: %w", where, name, err)
		}
	}
	MarkTrainable(store)
	hs := hostState{Step: int(step), PCG: rand.NewPCG(0, 0)}
	rng, err := base64.StdEncoding.DecodeString(meta[MetaRNG])
	if err == nil {
		err = hs.PCG.UnmarshalBinary(rng)
	}
	if err != nil {
		return hostState{}, fmt.Errorf("%s: metadata %s: %w", where, MetaRNG, err)
	}
	if err := json.Unmarshal([]byte(meta[MetaData]), &hs.Data); err != nil {
		return hostState{}, fmt.Errorf("%s: metadata %s: %w", where, MetaData, err)
	}
	if ev, ok := meta[MetaEval]; ok { // absent in checkpoints written before early stopping existed
		if err := json.Unmarshal([]byte(ev), &hs.Eval); err != nil {
			return hostState{}, fmt.Errorf("%s: metadata %s: %w", where, MetaEval, err)
		}
	}
	return hs, nil
}
