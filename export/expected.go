package export

import (
	"fmt"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend" // the shape check builds the network on the pure-Go backend
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/models"
)

// goBackend is the backend on which networks are built to list their variables (built, never run).
var goBackend = sync.OnceValues(func() (compute.Backend, error) { return compute.NewWithConfig("go") })

// netStore builds the denoiser network of mc for side×side×channels images on a fresh store and
// returns it holding every variable at its initial value (models.Builder's init from seed), keyed
// "/<path inside the network>".
func netStore(mc models.Config, side, channels int, seed uint64) (store *model.Store, err error) {
	if err := mc.CheckInput(side); err != nil {
		return nil, err
	}
	u, err := models.NewBackbone(mc, seed)
	if err != nil {
		return nil, err
	}
	backend, err := goBackend()
	if err != nil {
		return nil, err
	}
	store = model.NewStore()
	e, err := model.NewExec(backend, store, func(root *model.Scope, x, t, cond *Node) *Node {
		return u.Net(root, x, t, cond)
	})
	if err != nil {
		return nil, err
	}
	defer e.Finalize()
	defer func() { // graph building panics (GoMLX style); report them as errors
		if r := recover(); r != nil {
			store, err = nil, fmt.Errorf("build the network: %v", r)
		}
	}()
	condShape := shapes.Make(dtypes.Int32, 1)
	if mc.Text.On() {
		condShape = shapes.Make(dtypes.Int32, 1, mc.CondWidth())
	}
	if _, err := e.Compile(shapes.Make(dtypes.Float32, 1, side, side, channels), shapes.Make(dtypes.Float32, 1), condShape); err != nil {
		return nil, fmt.Errorf("build the network: %w", err)
	}
	return store, nil
}

// Expected returns the tensors an exported model of config mc for side×side×channels images
// holds: name (path inside the network) → shape (all F32).
func Expected(mc models.Config, side, channels int) (map[string]shapes.Shape, error) {
	store, err := netStore(mc, side, channels, 0)
	if err != nil {
		return nil, fmt.Errorf("export: tensors of the model config: %w", err)
	}
	out := map[string]shapes.Shape{}
	for v := range store.IterVariables() {
		out[strings.TrimPrefix(v.Path(), "/")] = v.Shape()
	}
	return out, nil
}

// RandomWeights sets m.Tensors to the initial weights a fresh training run of m's model config
// with this seed starts from (and a latent model's decoder to its initial weights from seed+1): a
// valid model before any training (tests, examples, smoke checks).
func (m *Model) RandomWeights(seed uint64) error {
	h, _, c := m.InputShape()
	store, err := netStore(m.Model, h, c, seed)
	if err != nil {
		return fmt.Errorf("export: random weights: %w", err)
	}
	ts := map[string]*tensors.Tensor{}
	for v := range store.IterVariables() {
		val, err := v.Value()
		if err != nil {
			return fmt.Errorf("export: random weights: %s: %w", v.Path(), err)
		}
		ts[strings.TrimPrefix(v.Path(), "/")] = val
	}
	m.Tensors = ts
	if m.Latent != nil {
		if m.Latent.Decoder, err = decoderWeights(m.Latent.Source, m.Latent.Tiny, seed+1); err != nil {
			return fmt.Errorf("export: random decoder weights: %w", err)
		}
	}
	return nil
}
