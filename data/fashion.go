package data

import (
	"errors"
	"fmt"
	"io/fs"
)

// FashionMNISTDir is where Debian's dataset-fashion-mnist package installs the idx files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// FashionMNISTClassNames are the Fashion-MNIST class names, indexed by label; the captions
// are FashionMNISTCaptions.
var FashionMNISTClassNames = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

var fashionMNISTDataset = idxDataset{name: "Fashion-MNIST", idPrefix: "fashion-mnist", classNames: FashionMNISTClassNames,
	captions: FashionMNISTCaptions}

// ImportFashionMNIST reads split ("train": 60,000 images, or "test": 10,000) of
// Fashion-MNIST from the idx files in srcDir ("" → FashionMNISTDir; same layout and checks
// as ReadMNISTSplit) and writes it to outPath like ImportMNIST: 28×28 gray PNG, label,
// caption = TemplateCaption(FashionMNISTCaptions, label, row) (row i: template i mod 5 of
// its class, e.g. "a photo of an ankle boot"), width, height, id
// "fashion-mnist-SPLIT-INDEX", class names (FashionMNISTClassNames) and the vocabulary of
// all templates in the metadata. It returns the written paths and the number of rows.
// Missing files produce an error that says how to install them.
func ImportFashionMNIST(srcDir, split, outPath string, opts WriterOptions) ([]string, int, error) {
	if srcDir == "" {
		srcDir = FashionMNISTDir
	}
	paths, n, err := importIDX(srcDir, split, outPath, fashionMNISTDataset, opts)
	if errors.Is(err, fs.ErrNotExist) {
		hint := "install them with `apt-get install -y dataset-fashion-mnist` (or `make fashion-mnist`)"
		if srcDir != FashionMNISTDir {
			hint = "pass -src with the directory holding train-images-idx3-ubyte.gz etc., or " + hint + " and leave -src out"
		}
		err = fmt.Errorf("%w: Fashion-MNIST files missing in %s: %s", err, srcDir, hint)
	}
	return paths, n, err
}
