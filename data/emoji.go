package data

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"image/draw"
	"image/png"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

const (
	// DefaultEmojiSource is where `make emoji` puts the npm package (`npm pack
	// emoji-datasource-twitter@16.0.0` in third_party/emoji/), relative to the repository root.
	DefaultEmojiSource = "third_party/emoji/emoji-datasource-twitter-16.0.0.tgz"
	// emojiImageDir holds the 64×64 RGBA Twitter PNGs inside the package.
	emojiImageDir = "img/twitter/64/"
	emojiJSON     = "emoji.json"
	emojiHint     = "run `make emoji` (it runs `npm pack emoji-datasource-twitter@16.0.0` into third_party/emoji/) or pass -src with the .tgz or its extracted directory"
)

// emojiEntry is the part of an emoji.json entry that the importer uses.
type emojiEntry struct {
	Name           string                    `json:"name"`
	ShortName      string                    `json:"short_name"`
	Unified        string                    `json:"unified"`
	Image          string                    `json:"image"`
	Category       string                    `json:"category"`
	SortOrder      int                       `json:"sort_order"`
	HasImgTwitter  bool                      `json:"has_img_twitter"`
	SkinVariations map[string]emojiVariation `json:"skin_variations"`
}

type emojiVariation struct {
	Unified       string `json:"unified"`
	Image         string `json:"image"`
	HasImgTwitter bool   `json:"has_img_twitter"`
}

// emojiSkinTones names the skin-tone modifiers of skin_variations keys ("1F3FB-1F3FD").
var emojiSkinTones = map[string]string{
	"1F3FB": "light skin tone", "1F3FC": "medium-light skin tone", "1F3FD": "medium skin tone",
	"1F3FE": "medium-dark skin tone", "1F3FF": "dark skin tone",
}

// emojiItem is one emoji image to import; key is the emoji's short name (shared by its skin
// variations), which EmojiHeldOut decides on.
type emojiItem struct {
	unified, image, caption, category, key string
}

// EmojiHeldOutPercent is the share of emoji names (in percent) that EmojiHeldOut holds out.
const EmojiHeldOutPercent = 10

// EmojiHeldOut reports whether the emoji with short name shortName (emoji.json's
// short_name, e.g. "grinning"; the lowercased name when an entry has none) belongs to the
// held-out split: FNV-1a 64 of the name, mod 100, below EmojiHeldOutPercent — about 10% of
// the names, the same ones on every machine and for every release of the package that keeps
// the name. All skin-tone variations of an emoji share its short name and so its split:
// a held-out caption's name is never seen in training.
func EmojiHeldOut(shortName string) bool {
	h := fnv.New64a()
	h.Write([]byte(shortName))
	return h.Sum64()%100 < EmojiHeldOutPercent
}

// EmojiSplit is what ImportEmojiSplit wrote: the files and row counts of the training and
// held-out splits.
type EmojiSplit struct {
	TrainPaths, HeldOutPaths []string
	TrainRows, HeldOutRows   int
}

// ImportEmoji imports the Twitter emoji of the npm package emoji-datasource-twitter (16.0.0:
// 3,786 images CC-BY-4.0, skin-tone variations included) from src, the package's .tgz
// (read directly) or its extracted directory ("" → DefaultEmojiSource). Only entries (and
// skin variations) with has_img_twitter whose PNG exists under img/twitter/64/ are kept,
// in emoji.json's sort_order. Each row: the RGBA image composited over white, as an RGB
// PNG; caption "name[, skin tones], category" in lower case; label = index of the category
// in order of first appearance (class names = categories); id "emoji-UNIFIED". opts.Vocab
// is built from the captions when nil (BuildVocab with opts.VocabSize). All rows go to
// outPath; ImportEmojiSplit holds some emoji out.
func ImportEmoji(src, outPath string, opts WriterOptions) ([]string, int, error) {
	e, err := readEmoji(src, &opts)
	if err != nil {
		return nil, 0, err
	}
	return e.write(outPath, e.items, opts)
}

// ImportEmojiSplit is ImportEmoji writing two files: the rows of emoji held out by
// EmojiHeldOut (about 10% of the names, with all their skin tones) to heldOutPath, the
// others to trainPath, each in sort_order, so that captions never seen in training can be
// prompted. Both files carry the same class names (all categories, in order of first
// appearance over all rows, so labels agree) and the same vocabulary, built from all
// captions, train and held-out (when opts.Vocab is nil): a held-out prompt then tokenizes
// without <unk> wherever its words occur in the package — its unseen words have ids whose
// embeddings training never updated. A split with no rows is written as an empty file.
func ImportEmojiSplit(src, trainPath, heldOutPath string, opts WriterOptions) (EmojiSplit, error) {
	if filepath.Clean(trainPath) == filepath.Clean(heldOutPath) {
		return EmojiSplit{}, fmt.Errorf("data: emoji: the training and held-out splits both go to %s", trainPath)
	}
	e, err := readEmoji(src, &opts)
	if err != nil {
		return EmojiSplit{}, err
	}
	var train, heldOut []emojiItem
	for _, it := range e.items {
		if EmojiHeldOut(it.key) {
			heldOut = append(heldOut, it)
		} else {
			train = append(train, it)
		}
	}
	var s EmojiSplit
	if s.TrainPaths, s.TrainRows, err = e.write(trainPath, train, opts); err != nil {
		return EmojiSplit{}, err
	}
	if s.HeldOutPaths, s.HeldOutRows, err = e.write(heldOutPath, heldOut, opts); err != nil {
		for _, p := range s.TrainPaths { // leave no half-written split behind
			os.Remove(p)
		}
		return EmojiSplit{}, err
	}
	return s, nil
}

// emojiSource is a read emoji package: its importable items, categories and PNGs.
type emojiSource struct {
	src        string
	items      []emojiItem
	categories []string
	images     map[string][]byte
}

// readEmoji reads src ("" → DefaultEmojiSource) and fills opts' class names and vocabulary
// (from all items) when unset.
func readEmoji(src string, opts *WriterOptions) (*emojiSource, error) {
	if src == "" {
		src = DefaultEmojiSource
	}
	meta, images, err := readEmojiSource(src)
	if err != nil {
		return nil, err
	}
	items, categories, err := emojiItems(meta, images)
	if err != nil {
		return nil, fmt.Errorf("data: emoji %s: %w", src, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("data: emoji %s: no entry with has_img_twitter has a PNG under %s: %s", src, emojiImageDir, emojiHint)
	}
	if opts.ClassNames == nil {
		opts.ClassNames = categories
	}
	if opts.Vocab == nil {
		captions := make([]string, len(items))
		for i, it := range items {
			captions[i] = it.caption
		}
		opts.Vocab = BuildVocab(captions, opts.VocabSize)
	}
	return &emojiSource{src: src, items: items, categories: categories, images: images}, nil
}

// write writes items to outPath (see ImportEmoji).
func (e *emojiSource) write(outPath string, items []emojiItem, opts WriterOptions) ([]string, int, error) {
	if opts.Total == 0 {
		opts.Total = len(items)
	}
	w, err := NewWriter(outPath, []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight, ColID}, opts)
	if err != nil {
		return nil, 0, err
	}
	err = writeRowsParallel(w, len(items), func(i int, enc *pngEncoder) (Row, error) {
		it := items[i]
		img, err := png.Decode(bytes.NewReader(e.images[it.image]))
		if err != nil {
			return Row{}, fmt.Errorf("data: emoji %s: %s%s: %w", e.src, emojiImageDir, it.image, err)
		}
		b, err := enc.encode(compositeOnWhite(img))
		if err != nil {
			return Row{}, fmt.Errorf("data: emoji %s: %s: encode png: %w", e.src, it.image, err)
		}
		r := img.Bounds()
		return Row{Image: b, Label: int32(slices.Index(e.categories, it.category)), HasLabel: true, Caption: it.caption,
			Width: int32(r.Dx()), Height: int32(r.Dy()), ID: "emoji-" + strings.ToLower(it.unified)}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return w.Close()
}

// compositeOnWhite returns img drawn over an opaque white canvas (alpha blending).
func compositeOnWhite(img image.Image) *image.RGBA {
	r := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(dst, dst.Rect, image.White, image.Point{}, draw.Src)
	draw.Draw(dst, dst.Rect, img, r.Min, draw.Over)
	return dst
}

// emojiItems lists the importable images in sort_order and the categories in order of
// first appearance.
func emojiItems(meta []byte, images map[string][]byte) ([]emojiItem, []string, error) {
	var entries []emojiEntry
	if err := json.Unmarshal(meta, &entries); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", emojiJSON, err)
	}
	slices.SortStableFunc(entries, func(a, b emojiEntry) int { return a.SortOrder - b.SortOrder })
	var items []emojiItem
	var categories []string
	add := func(e emojiEntry, unified, image, tones string) {
		if _, ok := images[image]; !ok || image == "" {
			return
		}
		name := e.Name
		if name == "" {
			name = strings.ReplaceAll(e.ShortName, "_", " ")
		}
		caption := strings.ToLower(name)
		if tones != "" {
			caption += ", " + tones
		}
		if e.Category != "" {
			caption += ", " + strings.ToLower(e.Category)
		}
		if !slices.Contains(categories, e.Category) {
			categories = append(categories, e.Category)
		}
		key := e.ShortName
		if key == "" {
			key = strings.ToLower(name)
		}
		items = append(items, emojiItem{unified: unified, image: image, caption: caption, category: e.Category, key: key})
	}
	for _, e := range entries {
		if e.HasImgTwitter {
			add(e, e.Unified, e.Image, "")
		}
		keys := make([]string, 0, len(e.SkinVariations))
		for k := range e.SkinVariations {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if v := e.SkinVariations[k]; v.HasImgTwitter {
				add(e, v.Unified, v.Image, skinToneNames(k))
			}
		}
	}
	return items, categories, nil
}

// skinToneNames turns "1F3FB-1F3FD" into "light skin tone, medium skin tone".
func skinToneNames(key string) string {
	var names []string
	for _, code := range strings.Split(key, "-") {
		if n, ok := emojiSkinTones[strings.ToUpper(code)]; ok {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// readEmojiSource returns emoji.json and the 64×64 PNGs (by file name) of the package at
// src: a .tgz (or .tar.gz) read as a stream, or a directory holding emoji.json (the
// extracted "package" directory or its parent).
func readEmojiSource(src string) ([]byte, map[string][]byte, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, nil, fmt.Errorf("data: emoji source %w: %s", err, emojiHint)
	}
	if !st.IsDir() {
		return readEmojiTGZ(src)
	}
	root := src
	if _, err := os.Stat(filepath.Join(src, "package", emojiJSON)); err == nil {
		root = filepath.Join(src, "package")
	}
	meta, err := os.ReadFile(filepath.Join(root, emojiJSON))
	if err != nil {
		return nil, nil, fmt.Errorf("data: emoji source %s: %w: %s", src, err, emojiHint)
	}
	dir := filepath.Join(root, filepath.FromSlash(emojiImageDir))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("data: emoji source %s: %w: %s", src, err, emojiHint)
	}
	images := map[string][]byte{}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".png") {
			if images[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
				return nil, nil, fmt.Errorf("data: emoji source %s: %w", src, err)
			}
		}
	}
	return meta, images, nil
}

// readEmojiTGZ reads emoji.json and the PNGs under img/twitter/64/ from an npm tarball
// (entries "package/…"; any top-level directory name is accepted).
func readEmojiTGZ(src string) ([]byte, map[string][]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, nil, fmt.Errorf("data: emoji source %w: %s", err, emojiHint)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("data: emoji source %s: gzip: %w: %s", src, err, emojiHint)
	}
	tr := tar.NewReader(zr)
	var meta []byte
	images := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("data: emoji source %s: tar: %w", src, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		_, name, _ := strings.Cut(path.Clean(h.Name), "/") // drop "package/"
		dir, base := path.Split(name)
		switch {
		case name == emojiJSON:
			meta, err = io.ReadAll(tr)
		case dir == emojiImageDir && strings.HasSuffix(base, ".png"):
			images[base], err = io.ReadAll(tr)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("data: emoji source %s: %s: %w", src, h.Name, err)
		}
	}
	if meta == nil {
		return nil, nil, fmt.Errorf("data: emoji source %s: %w", src, errors.New("no package/emoji.json in the archive: "+emojiHint))
	}
	return meta, images, nil
}
