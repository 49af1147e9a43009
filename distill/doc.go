// Package distill will hold one file per distillation method (ladd.go, imagineflash.go, sdxs.go,
// qualitytune.go): the scopes of teacher, student and discriminator and each method's step.
// Empty until the distillation issues land.
package distill
