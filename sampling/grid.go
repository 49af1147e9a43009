package sampling

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/fewstep/fewstep/checkpoints"
)

// GridPNG lays out n images [N, H, W, C] (values in [-1, 1], C = 1 or 3) in rows of `cols`,
// separated by a 2-pixel border, and encodes the grid as PNG.
func GridPNG(imgs []float32, n, h, w, c, cols int) ([]byte, error) {
	if len(imgs) != n*h*w*c {
		return nil, fmt.Errorf("grid: %d values for %d images of %dx%dx%d", len(imgs), n, h, w, c)
	}
	if c != 1 && c != 3 {
		return nil, fmt.Errorf("grid: %d channels (want 1 or 3)", c)
	}
	const pad = 2
	rows := (n + cols - 1) / cols
	canvas := image.NewRGBA(image.Rect(0, 0, cols*(w+pad)+pad, rows*(h+pad)+pad))
	for i := range canvas.Pix {
		canvas.Pix[i] = 255 // white border
	}
	toByte := func(v float32) uint8 { return uint8(min(max((v+1)*127.5+0.5, 0), 255)) }
	for k := range n {
		x0, y0 := pad+(k%cols)*(w+pad), pad+(k/cols)*(h+pad)
		for y := range h {
			for x := range w {
				base := ((k*h+y)*w + x) * c
				r := toByte(imgs[base])
				g, b := r, r
				if c == 3 {
					g, b = toByte(imgs[base+1]), toByte(imgs[base+2])
				}
				canvas.SetRGBA(x0+x, y0+y, color.RGBA{R: r, G: g, B: b, A: 255})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, canvas); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteGrid writes GridPNG atomically to path.
func WriteGrid(path string, imgs []float32, n, h, w, c, cols int) error {
	data, err := GridPNG(imgs, n, h, w, c, cols)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return checkpoints.WriteFileAtomic(path, data, 0o644)
}

// ImagePNG encodes one image [H, W, C] (values in [-1, 1], C = 1 or 3) as PNG (gray or RGB).
func ImagePNG(img []float32, h, w, c int) ([]byte, error) {
	if len(img) != h*w*c || (c != 1 && c != 3) {
		return nil, fmt.Errorf("image: %d values for %dx%dx%d", len(img), h, w, c)
	}
	toByte := func(v float32) uint8 { return uint8(min(max((v+1)*127.5+0.5, 0), 255)) }
	var m image.Image
	if c == 1 {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i, v := range img {
			g.Pix[i] = toByte(v)
		}
		m = g
	} else {
		rgba := image.NewRGBA(image.Rect(0, 0, w, h))
		for p := range h * w {
			rgba.Pix[4*p], rgba.Pix[4*p+1], rgba.Pix[4*p+2], rgba.Pix[4*p+3] = toByte(img[3*p]), toByte(img[3*p+1]), toByte(img[3*p+2]), 255
		}
		m = rgba
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
