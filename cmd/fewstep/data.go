package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fewstep/fewstep/data"
)

const dataUsage = `usage:
  fewstep data import mnist|fashion-mnist [-split train|test] -out FILE.parquet [-src DIR] [write flags]
  fewstep data import emoji [-src PATH] -out FILE.parquet [-heldout-out HELDOUT.parquet] [write flags]
  fewstep data import folder DIR -out FILE.parquet [-manifest M] [-size 64] [-recursive=false] [write flags]
  fewstep data score -data IN.parquet -scorer classifier|classifier-margin|sharpness|column:NAME -out OUT.parquet [-config NAME|FILE] [-classifier-data TRAIN.parquet] [-classifier-test TEST.parquet]
  fewstep data encode -autoencoder RUN_DIR -data IN.parquet -out OUT.parquet [-batch 250]
  fewstep data inspect FILE.parquet... [-top-k K [-per-class]] [-min-score S]
  fewstep data grid FILE.parquet [-n 64] [-seed S] -out grid.png
  fewstep data grid FILE.parquet -top-k K [-per-class] [-min-score S] [-n 8] -out grid.png
  fewstep data bench FILES [-name mnist] [-batch 64] [-batches 300] [-size 32] [-channels 1] [-workers 2] [-hflip] [-crop 1]
write flags: -row-group N -compression zstd|snappy|none -shard-rows N -vocab-size N`

func cmdData(args []string) error {
	if len(args) == 0 {
		return usagef("%s", dataUsage)
	}
	switch args[0] {
	case "import":
		if len(args) < 2 {
			return usagef("%s", dataUsage)
		}
		switch args[1] {
		case "mnist", "fashion-mnist":
			return importIDX(args[1], args[2:])
		case "emoji":
			return importEmoji(args[2:])
		case "folder":
			return importFolder(args[2:])
		}
		return usagef("data import: unknown dataset %q (available: mnist, fashion-mnist, emoji, folder)", args[1])
	case "score":
		return scoreData(args[1:])
	case "encode":
		return encodeData(args[1:])
	case "inspect":
		return inspectData(args[1:])
	case "grid":
		return gridData(args[1:])
	case "bench":
		return benchData(args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(os.Stderr, dataUsage)
		return nil
	}
	return usagef("data: unknown subcommand %q (available: import, score, encode, inspect, grid, bench)\n%s", args[0], dataUsage)
}

// writeFlags are the flags every importer shares.
type writeFlags struct {
	out                           *string
	rowGroup, shardRows, vocabLen *int
	compression                   *string
}

func addWriteFlags(fs *flag.FlagSet) *writeFlags {
	return &writeFlags{
		out:         fs.String("out", "", "output Parquet file (required; with -shard-rows the shards are OUT-00000-of-0000N.parquet)"),
		rowGroup:    fs.Int("row-group", data.DefaultRowGroupRows, "rows per Parquet row group"),
		compression: fs.String("compression", "zstd", "zstd, snappy or none"),
		shardRows:   fs.Int("shard-rows", 0, "at most this many rows per shard file (0: one file)"),
		vocabLen:    fs.Int("vocab-size", data.DefaultVocabSize, "caption vocabulary size, <pad> and <unk> included"),
	}
}

// options validates the flags into writer options (usage errors name the flag).
func (f *writeFlags) options(cmd string) (data.WriterOptions, error) {
	if *f.out == "" {
		return data.WriterOptions{}, usagef("%s: -out is required", cmd)
	}
	if *f.rowGroup <= 0 {
		return data.WriterOptions{}, usagef("%s: -row-group %d: want > 0", cmd, *f.rowGroup)
	}
	if *f.vocabLen < 2 {
		return data.WriterOptions{}, usagef("%s: -vocab-size %d: want >= 2 (<pad> and <unk>)", cmd, *f.vocabLen)
	}
	opts := data.WriterOptions{RowGroupRows: *f.rowGroup, Compression: *f.compression, ShardRows: *f.shardRows,
		VocabSize: *f.vocabLen, Progress: os.Stdout}
	if err := opts.Validate(); err != nil {
		return opts, usagef("%s: %v", cmd, err)
	}
	return opts, nil
}

// parseWithArgs parses flags that may come before or after positional arguments
// (`folder DIR -out F` or `folder -out F DIR`) and returns the positional ones.
func parseWithArgs(fs *flag.FlagSet, args []string) (help bool, pos []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return true, nil, nil
			}
			return false, nil, usagef("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return false, pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func importIDX(name string, args []string) error {
	cmd := "data import " + name
	fs := newFlagSet(cmd, cmd+" [-split train|test] -out FILE.parquet [-src DIR] [write flags]")
	split := fs.String("split", "train", "train (60,000 images) or test (10,000)")
	srcHelp := "directory with the idx .gz files (default: the GoMNIST module in the Go module cache)"
	if name == "fashion-mnist" {
		srcHelp = "directory with the idx .gz files (default: " + data.FashionMNISTDir + ", from `apt-get install -y dataset-fashion-mnist`)"
	}
	src := fs.String("src", "", srcHelp)
	wf := addWriteFlags(fs)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	opts, err := wf.options(cmd)
	if err != nil {
		return err
	}
	if *split != "train" && *split != "test" {
		return usagef("%s: -split %q: want train or test", cmd, *split)
	}
	t0 := time.Now()
	var paths []string
	var n int
	if name == "fashion-mnist" {
		paths, n, err = data.ImportFashionMNIST(*src, *split, *wf.out, opts)
	} else {
		dir := *src
		if dir == "" {
			if dir, err = data.FindGoMNIST(); err != nil {
				return err
			}
		}
		paths, n, err = data.ImportMNISTWithOptions(dir, *split, *wf.out, opts)
	}
	if err != nil {
		return err
	}
	return reportWritten(paths, n, name+" "+*split, t0)
}

func importEmoji(args []string) error {
	const cmd = "data import emoji"
	fs := newFlagSet(cmd, cmd+" [-src PATH] -out FILE.parquet [-heldout-out HELDOUT.parquet] [write flags]")
	src := fs.String("src", data.DefaultEmojiSource, "the npm package .tgz (from `make emoji`) or its extracted directory")
	heldOut := fs.String("heldout-out", "", "write the held-out emoji (~10% of the names, data.EmojiHeldOut) here and the rest to -out (default: all rows to -out)")
	wf := addWriteFlags(fs)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	opts, err := wf.options(cmd)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if *heldOut == "" {
		paths, n, err := data.ImportEmoji(*src, *wf.out, opts)
		if err != nil {
			return err
		}
		return reportWritten(paths, n, "emoji", t0)
	}
	s, err := data.ImportEmojiSplit(*src, *wf.out, *heldOut, opts)
	if err != nil {
		return err
	}
	reportWritten(s.TrainPaths, s.TrainRows, "emoji training", t0)
	return reportWritten(s.HeldOutPaths, s.HeldOutRows, "emoji held-out", t0)
}

func importFolder(args []string) error {
	const cmd = "data import folder"
	fs := newFlagSet(cmd, cmd+" DIR -out FILE.parquet [-manifest M] [-size 64] [-recursive=false] [write flags]")
	manifest := fs.String("manifest", "", "CSV (with header) or JSONL manifest: file, caption, label, score; paths relative to its directory")
	size := fs.Int("size", 0, "resize the shorter side to this size and center-crop to a square (0: keep the images)")
	recursive := fs.Bool("recursive", true, "walk subdirectories (first-level subdirectory names become labels)")
	wf := addWriteFlags(fs)
	help, pos, err := parseWithArgs(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s: want one directory argument, got %d (%q)", cmd, len(pos), pos)
	}
	opts, err := wf.options(cmd)
	if err != nil {
		return err
	}
	if *size < 0 {
		return usagef("%s: -size %d: want >= 0", cmd, *size)
	}
	if st, err := os.Stat(pos[0]); err != nil || !st.IsDir() {
		return usagef("%s: %s is not a directory", cmd, pos[0])
	}
	t0 := time.Now()
	paths, n, err := data.ImportFolder(pos[0], *wf.out, data.FolderOptions{Manifest: *manifest, Size: *size, Recursive: *recursive}, opts)
	if err != nil {
		return err
	}
	return reportWritten(paths, n, "images from "+pos[0], t0)
}

// reportWritten prints the output files and the row count.
func reportWritten(paths []string, n int, what string, t0 time.Time) error {
	fmt.Printf("wrote %d %s rows to %s (%.1fs)\n", n, what, strings.Join(paths, ", "), time.Since(t0).Seconds())
	return nil
}

func inspectData(args []string) error {
	const cmd = "data inspect"
	fs := newFlagSet(cmd, cmd+" FILE.parquet... [-top-k K [-per-class]] [-min-score S]")
	cf := addCurationFlags(fs)
	help, files, err := parseWithArgs(fs, args)
	if help || err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("%s: no file given", cmd)
	}
	cur, err := cf.curation(cmd)
	if err != nil {
		return err
	}
	if err := data.Inspect(os.Stdout, files...); err != nil || !cur.Active() {
		return err
	}
	return data.InspectCuration(os.Stdout, cur, files...)
}

func gridData(args []string) error {
	const cmd = "data grid"
	fs := newFlagSet(cmd, cmd+" FILE.parquet [-n 64] [-seed S] -out grid.png | FILE.parquet -top-k K [-per-class] [-min-score S] [-n 8] -out grid.png")
	n := fs.Int("n", 64, "number of images; with -top-k or -min-score, kept and rejected images per class row (default 8)")
	seed := fs.Int("seed", 0, "0: the first n rows; else n random rows drawn with this seed")
	out := fs.String("out", "", "output PNG (required)")
	cf := addCurationFlags(fs)
	help, files, err := parseWithArgs(fs, args)
	if help || err != nil {
		return err
	}
	cur, err := cf.curation(cmd)
	if err != nil {
		return err
	}
	if cur.Active() && flagGiven(fs, "seed") {
		return usagef("%s: -seed draws random rows; with -top-k or -min-score the grid shows kept and rejected rows", cmd)
	}
	if cur.Active() && !flagGiven(fs, "n") {
		*n = 8
	}
	switch {
	case len(files) != 1:
		return usagef("%s: want one Parquet file, got %d (%q)", cmd, len(files), files)
	case *out == "":
		return usagef("%s: -out is required", cmd)
	case *n <= 0:
		return usagef("%s: -n %d: want > 0", cmd, *n)
	}
	if cur.Active() {
		if err := data.CurationGrid(files[0], cur, *n, *out); err != nil {
			return err
		}
		fmt.Printf("wrote %s: one row per class, the first %d kept images (%s) left of the red bar, the %d lowest-scoring rejected right of it\n", *out, *n, cur, *n)
		return nil
	}
	if err := data.GridFromFile(files[0], *n, *seed, *out); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", *out)
	return nil
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// benchData times the data stream alone (decoded, augmented, batched images per second).
func benchData(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usagef("data bench: the first argument names the Parquet files (paths or globs)\n%s", dataUsage)
	}
	files := args[0]
	fs := newFlagSet("data bench", "data bench FILES [-name N] [-batch 64] [-batches 300] [-size 32] [-channels 1] [-workers 2]")
	name := fs.String("name", "data", "dataset name in the summary line")
	batch := fs.Int("batch", 64, "batch size")
	batches := fs.Int("batches", 300, "timed batches")
	size := fs.Int("size", 32, "data.image_size")
	channels := fs.Int("channels", 1, "data.channels")
	workers := fs.Int("workers", 2, "data.workers")
	classes := fs.Int("classes", 10, "data.num_classes")
	hflip := fs.Bool("hflip", false, "data.hflip")
	crop := fs.Float64("crop", 1, "data.crop_scale")
	if help, err := parseFlags(fs, args[1:]); help || err != nil {
		return err
	}
	cfg := data.DefaultConfig()
	cfg.Train, cfg.ImageSize, cfg.Channels, cfg.Workers, cfg.NumClasses = files, *size, *channels, *workers, *classes
	cfg.HFlip, cfg.CropScale = *hflip, *crop
	if err := cfg.Validate(); err != nil {
		return usagef("data bench: %v", err)
	}
	ips, err := data.Throughput(cfg, *batch, 10, *batches, 1)
	if err != nil {
		return err
	}
	fmt.Printf("bench loader=%s batch=%d workers=%d img_per_s=%.0f\n", *name, *batch, *workers, ips)
	return nil
}
