// Package losses holds small per-example objectives. Each returns one value per example, shape [B],
// and does no reduction, optimizer step or logging (anchor: EDM training/loss.py).
package losses
