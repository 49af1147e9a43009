package models

import (
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

// NewDenoiser builds the U-Net denoiser of a model and diffusion config.
func NewDenoiser(mc Config, dc DiffusionConfig, seed uint64) (*Denoiser, *UNet, error) {
	if err := dc.Validate(); err != nil {
		return nil, nil, err
	}
	u, err := NewUNet(mc, seed)
	if err != nil {
		return nil, nil, err
	}
	return &Denoiser{Net: u.Net, Prediction: Prediction(dc.Prediction), Schedule: dc.Sched()}, u, nil
}

// Denoise returns (x̂0, ε̂) for x_t at times t. xt: [B, H, W, C], t: [B], cond: [B] int32.
func (d *Denoiser) Denoise(scope *model.Scope, xt, t, cond *Node) (x0, eps *Node) {
	pred := d.Net(scope, xt, t, cond)
	alpha, sigma := d.Schedule.AlphaSigmaNode(ExpandAxes(t, 1, 2, 3))
	return d.Prediction.X0Eps(xt, pred, alpha, sigma)
}
