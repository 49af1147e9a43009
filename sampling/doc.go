// Package sampling is the one place where timestep schedules (host floats) and solver steps (graph
// functions (x, t, s) → x') live; a Go loop drives one compiled executor per batch shape, passing
// times as tensors so nothing recompiles per step (anchor: k-diffusion sampling.py).
//
// Reproducibility: the initial noise of image i comes only from its seed (NoiseForSeed), so grids
// compare pixel by pixel across batch sizes and devices (anchor: EDM StackedRandomGenerator).
package sampling
