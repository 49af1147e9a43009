package models

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// CountForward builds the denoiser of (mc, dc) on a fresh store, runs one forward pass on a batch of
// one side×side×channels image and returns its parameter count and its forward FLOPs per image
// (2·M·K·N of every matmul-like op; SDXS §3.2 reports the pruned student's against the teacher's).
func CountForward(backend compute.Backend, mc Config, dc DiffusionConfig, side, channels int) (params int, flops int64, err error) {
	mc.DropBlocks = append([]string(nil), mc.DropBlocks...)
	d, u, err := NewDenoiser(mc, dc, 0)
	if err != nil {
		return 0, 0, err
	}
	store := model.NewStore()
	e, err := model.NewExec(backend, store, func(root *model.Scope, x, t, cond *Node) *Node {
		return d.Net(root.In("net"), x, t, cond)
	})
	if err != nil {
		return 0, 0, err
	}
	out, err := e.Call1(tensors.FromFlatDataAndDimensions(make([]float32, side*side*channels), 1, side, side, channels),
		tensors.FromFlatDataAndDimensions([]float32{0.5}, 1), countCond(mc))
	if err != nil {
		return 0, 0, fmt.Errorf("count %v: %w", mc.DropBlocks, err)
	}
	if err := out.FinalizeAll(); err != nil {
		return 0, 0, err
	}
	for v := range store.IterVariables() {
		params += v.Shape().Size()
	}
	return params, u.Params().FLOPs, nil
}

// countCond is a one-example condition: class 0 and, for a text model, a caption of MaxTokens
// tokens (FLOPs do not depend on the ids), or a zero embedding.
func countCond(mc Config) *tensors.Tensor {
	cw := mc.CondWidth()
	if cw == 1 {
		return tensors.FromFlatDataAndDimensions([]int32{0}, 1)
	}
	row := make([]int32, cw)
	if !mc.Text.Column() {
		for i := range row[1:] {
			row[1+i] = int32(min(2, mc.Text.VocabSize()-1))
		}
	}
	return tensors.FromFlatDataAndDimensions(row, 1, cw)
}
