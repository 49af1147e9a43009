package main

import (
	"fmt"
	"time"

	"github.com/fewstep/fewstep/data"
)

func cmdData(args []string) error {
	if len(args) < 2 || args[0] != "import" {
		return usagef("usage: fewstep data import mnist -split train|test -out FILE.parquet [-src DIR]")
	}
	switch args[1] {
	case "mnist":
		return importMNIST(args[2:])
	default:
		return usagef("data import: unknown dataset %q (available: mnist)", args[1])
	}
}

func importMNIST(args []string) error {
	fs := newFlagSet("data import mnist", "data import mnist [-split train|test] -out FILE.parquet [-src DIR]")
	split := fs.String("split", "train", "train (60,000 images) or test (10,000)")
	out := fs.String("out", "", "output Parquet file (required)")
	src := fs.String("src", "", "directory with the idx .gz files (default: the GoMNIST module in the Go module cache)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *out == "" {
		return usagef("data import mnist: -out is required")
	}
	if *split != "train" && *split != "test" {
		return usagef("data import mnist: -split %q: want train or test", *split)
	}
	dir := *src
	if dir == "" {
		var err error
		if dir, err = data.FindGoMNIST(); err != nil {
			return err
		}
	}
	t0 := time.Now()
	n, err := data.ImportMNIST(dir, *split, *out)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d MNIST %s images (%.1fs)\n", *out, n, *split, time.Since(t0).Seconds())
	return nil
}
