package data

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
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

// emojiItem is one emoji image to import.
type emojiItem struct {
	unified, image, caption, category string
}

// ImportEmoji imports the Twitter emoji of the npm package emoji-datasource-twitter (16.0.0:
// 3,786 images CC-BY-4.0, skin-tone variations included) from src, the package's .tgz
// (read directly) or its extracted directory ("" → DefaultEmojiSource). Only entries (and
// skin variations) with has_img_twitter whose PNG exists under img/twitter/64/ are kept,
// in emoji.json's sort_order. Each row: the RGBA image composited over white, as an RGB
// PNG; caption "name[, skin tones], category" in lower case; label = index of the category
// in order of first appearance (class names = categories); id "emoji-UNIFIED". opts.Vocab
// is built from the captions when nil (BuildVocab with opts.VocabSize).
func ImportEmoji(src, outPath string, opts WriterOptions) ([]string, int, error) {
	if src == "" {
		src = DefaultEmojiSource
	}
	meta, images, err := readEmojiSource(src)
	if err != nil {
		return nil, 0, err
	}
	items, categories, err := emojiItems(meta, images)
	if err != nil {
		return nil, 0, fmt.Errorf("data: emoji %s: %w", src, err)
	}
	if len(items) == 0 {
		return nil, 0, fmt.Errorf("data: emoji %s: no entry with has_img_twitter has a PNG under %s: %s", src, emojiImageDir, emojiHint)
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
	if opts.Total == 0 {
		opts.Total = len(items)
	}
	w, err := NewWriter(outPath, []string{ColImage, ColLabel, ColCaption, ColWidth, ColHeight, ColID}, opts)
	if err != nil {
		return nil, 0, err
	}
	err = writeRowsParallel(w, len(items), func(i int, enc *pngEncoder) (Row, error) {
		it := items[i]
		img, err := png.Decode(bytes.NewReader(images[it.image]))
		if err != nil {
			return Row{}, fmt.Errorf("data: emoji %s: %s%s: %w", src, emojiImageDir, it.image, err)
		}
		b, err := enc.encode(compositeOnWhite(img))
		if err != nil {
			return Row{}, fmt.Errorf("data: emoji %s: %s: encode png: %w", src, it.image, err)
		}
		r := img.Bounds()
		return Row{Image: b, Label: int32(slices.Index(categories, it.category)), HasLabel: true, Caption: it.caption,
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
		items = append(items, emojiItem{unified: unified, image: image, caption: caption, category: e.Category})
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
