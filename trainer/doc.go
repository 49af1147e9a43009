// Package trainer owns the train loop: step assembly, the AdamW optimizer, the learning-rate and EMA
// schedules (pure functions of the step), gradient clipping, checkpoint/sample callbacks, the JSONL
// metrics log and progress output.
//
// Order inside one step (anchor: consistency_models run_step): loss and gradients → global-norm
// clipping → AdamW update → EMA update; all state changes are skipped when the loss or the gradient
// norm is not finite, so a NaN never reaches the weights.
package trainer
