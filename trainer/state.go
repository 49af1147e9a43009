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
	formatTrain1 = "fewstep-train-state-v1"
)

// hostState is the training state that lives on the host: with the store's variables (weights,
// EMA, AdamW moments) it is everything needed to resume exactly.
type hostState struct {
	Step int           // optimizer steps done
	PCG  *rand.PCG     // source of t, eps and condition dropout
	Data data.Position // loader position
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
	meta := map[string]string{
		MetaFormat: formatTrain1,
		MetaRNG:    base64.StdEncoding.EncodeToString(rng),
		MetaData:   string(pos),
		MetaConfig: string(configYAML),
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
	return hs, nil
}
