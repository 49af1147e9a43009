package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// Net is the one network signature: x_t: [B, H, W, C], t: [B] float32, cond: [B] int32 → raw
// prediction [B, H, W, C]. Teacher, student and EMA are the same Net on different scopes.
type Net func(scope *model.Scope, xt, t, cond *Node) *Node

// Denoiser wraps a Net with its parameterization and schedule: D(x_t, t, cond) (Karras et al.,
// "Elucidating the Design Space…", arXiv 2206.00364, §2). Losses and samplers see only this.
type Denoiser struct {
	Net        Net
	Prediction Prediction
	Schedule   Schedule
}

// Backbone is a denoiser network of model.arch (UNet, DiT): one Net signature, named feature taps
// (Config.TapNames; LADD's heads and SDXS's feature matching read them) and the parameter builder
// (Frozen, FLOPs).
type Backbone interface {
	Net(scope *model.Scope, xt, t, cond *Node) *Node
	// Features runs Net and returns the named taps in order, each a channels-first map [C, B, h, w].
	Features(scope *model.Scope, xt, t, cond *Node, names []string) []*Node
	Params() *Builder
}

// NewBackbone validates mc and returns the network of model.arch.
func NewBackbone(mc Config, seed uint64) (Backbone, error) {
	if mc.FirstStage() {
		return nil, fmt.Errorf("model.arch: %s: this run trains (part of) an autoencoder, not a denoiser", mc.Arch)
	}
	if mc.Transformer() {
		return NewDiT(mc, seed)
	}
	return NewUNet(mc, seed)
}

// NewDenoiser builds the denoiser (network of model.arch) of a model and diffusion config.
func NewDenoiser(mc Config, dc DiffusionConfig, seed uint64) (*Denoiser, Backbone, error) {
	if err := dc.Validate(); err != nil {
		return nil, nil, err
	}
	net, err := NewBackbone(mc, seed)
	if err != nil {
		return nil, nil, err
	}
	return &Denoiser{Net: net.Net, Prediction: Prediction(dc.Prediction), Schedule: dc.Sched()}, net, nil
}

// Denoise returns (x̂0, ε̂) for x_t at times t. xt: [B, H, W, C], t: [B], cond: [B] int32.
func (d *Denoiser) Denoise(scope *model.Scope, xt, t, cond *Node) (x0, eps *Node) {
	pred := d.Net(scope, xt, t, cond)
	alpha, sigma := d.Schedule.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	return d.Prediction.X0Eps(xt, pred, alpha, sigma)
}
