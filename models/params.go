package models

import (
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Init says how a missing parameter gets its initial value.
type Init int

const (
	// InitFanIn draws N(0, gain²/fanIn) where fanIn is the product of all but the last axis.
	InitFanIn Init = iota
	// InitZeros gives zeros (biases, the last layer of residual branches: Ho et al. 2020, Dhariwal & Nichol 2021).
	InitZeros
	// InitOnes gives ones (normalization gains).
	InitOnes
	// InitNormal draws N(0, 1) (embedding tables).
	InitNormal
)

// Builder creates or reuses the variables of a network and counts its multiply-add FLOPs.
//
// Seed fixes the host-side initialization; when Frozen is set, a missing variable is an error
// (used when the weights must come from a checkpoint, e.g. sampling from EMA weights).
type Builder struct {
	Seed   uint64
	Frozen bool
	// FLOPs accumulates 2·M·K·N for every matmul-like op built (per call of the graph function).
	FLOPs int64
	// LoRA, when on, adds low-rank adapters to the layers it targets (LoRAConfig).
	LoRA *LoRAConfig
}

// Param returns the value node of variable `name` in scope, creating it with `init` if missing.
// Shapes: any; dtype float32.
func (b *Builder) Param(scope *model.Scope, g *Graph, name string, init Init, gain float64, dims ...int) *Node {
	path := model.JoinPath(scope.Scope(), name)
	store := scope.Store()
	if v := store.GetVariable(path); v != nil {
		want := shapes.Make(dtypes.Float32, dims...)
		if !v.Shape().Equal(want) {
			exceptions.Panicf("variable %q has shape %s, the model config needs %s (config and checkpoint disagree?)",
				path, v.Shape(), want)
		}
		return v.NodeValue(g)
	}
	if b.Frozen {
		exceptions.Panicf("variable %q is missing from the loaded weights (model config and checkpoint disagree?)", path)
	}
	v, err := store.CreateVariable(path, initTensor(b.Seed, path, init, gain, dims))
	if err != nil {
		panic(err)
	}
	return v.NodeValue(g)
}

// initTensor draws the initial value of the variable at path deterministically from (seed, path).
func initTensor(seed uint64, path string, init Init, gain float64, dims []int) *tensors.Tensor {
	size := 1
	for _, d := range dims {
		size *= d
	}
	values := make([]float32, size)
	switch init {
	case InitOnes:
		for i := range values {
			values[i] = 1
		}
	case InitFanIn, InitNormal:
		h := fnv.New64a()
		_, _ = h.Write([]byte(path))
		rng := rand.New(rand.NewPCG(seed, h.Sum64()))
		std := gain
		if init == InitFanIn {
			fanIn := 1
			for _, d := range dims[:len(dims)-1] {
				fanIn *= d
			}
			std = gain / math.Sqrt(float64(max(fanIn, 1)))
		}
		for i := range values {
			values[i] = float32(rng.NormFloat64() * std)
		}
	}
	return tensors.FromFlatDataAndDimensions(values, dims...)
}
