// Package distill holds one file per distillation method (ladd.go; imagineflash.go, sdxs.go and
// qualitytune.go as they land): the scopes of teacher (/teacher, frozen), student (/model, with
// /ema) and discriminator (/disc), and each method's step as a trainer.Method, so the trainer's
// loop (checkpoints, exact resume, NaN stop, metrics, sample grids) runs every method.
package distill
