package data

import (
	"math"
	"math/rand/v2"
)

// augmentation is the random transform of one example: the square crop
// [top, top+side) × [left, left+side) of the canvas, resized back to the full side by
// bilinear interpolation, then optionally flipped horizontally. side = canvas side means no
// crop.
type augmentation struct {
	flip            bool
	top, left, side int
}

// drawAugmentation returns the transform of the example at order position (epoch, index):
// its randomness comes only from PCG(seed, streamKey(streamAugment, epoch, index)), so it
// does not depend on workers, timing or batch size. The first draw decides the flip (used
// if cfg.HFlip), the next three the crop (if cfg.CropScale < 1): its area fraction, uniform
// in [CropScale, 1], and its top-left corner, uniform over the positions that fit.
func drawAugmentation(cfg Config, seed uint64, epoch, index int64) augmentation {
	size := cfg.ImageSize
	a := augmentation{side: size}
	if !cfg.HFlip && cfg.CropScale >= 1 {
		return a
	}
	src := rand.NewPCG(seed, streamKey(streamAugment, epoch, index))
	a.flip = cfg.HFlip && src.Uint64()>>63 == 1
	if cfg.CropScale < 1 {
		u := float64(src.Uint64()>>11) / (1 << 53) // uniform in [0, 1)
		area := cfg.CropScale + (1-cfg.CropScale)*u
		a.side = min(max(int(math.Round(float64(size)*math.Sqrt(area))), 1), size)
		a.top = int(boundedUint64(src, uint64(size-a.side+1)))
		a.left = int(boundedUint64(src, uint64(size-a.side+1)))
	}
	return a
}

// render writes the canvas, uint8 [size, size, channels], transformed by a, to dst, float32
// [size, size, channels], scaled to v/127.5 - 1 in [-1, 1].
func (a augmentation) render(dst []float32, canvas []uint8, size, channels int) {
	if a.side >= size && !a.flip {
		for i, v := range canvas[:len(dst)] {
			dst[i] = pixelScale[v]
		}
		return
	}
	if a.side >= size {
		row := size * channels
		for y := range size {
			in, out := canvas[y*row:(y+1)*row], dst[y*row:(y+1)*row]
			for x := range size {
				src, o := in[(size-1-x)*channels:], out[x*channels:]
				for c := range channels {
					o[c] = pixelScale[src[c]]
				}
			}
		}
		return
	}
	// Bilinear resize of the crop, sampling at pixel centres: output pixel x reads crop
	// coordinate (x + 0.5)·side/size - 0.5, clamped to the crop.
	scale := float32(a.side) / float32(size)
	row := size * channels
	for y := range size {
		y0, y1, fy := a.tap(y, scale)
		r0 := canvas[(a.top+y0)*row+a.left*channels:]
		r1 := canvas[(a.top+y1)*row+a.left*channels:]
		for x := range size {
			ox := x
			if a.flip {
				ox = size - 1 - x
			}
			x0, x1, fx := a.tap(ox, scale)
			out := dst[y*row+x*channels:]
			for c := range channels {
				i0, i1 := x0*channels+c, x1*channels+c
				top := (1-fx)*float32(r0[i0]) + fx*float32(r0[i1])
				bottom := (1-fx)*float32(r1[i0]) + fx*float32(r1[i1])
				out[c] = ((1-fy)*top+fy*bottom)/127.5 - 1
			}
		}
	}
}

// tap returns the two crop coordinates that output coordinate o interpolates between and
// the weight of the second.
func (a augmentation) tap(o int, scale float32) (i0, i1 int, f float32) {
	s := (float32(o)+0.5)*scale - 0.5
	s = min(max(s, 0), float32(a.side-1))
	i0 = int(s)
	i1 = min(i0+1, a.side-1)
	return i0, i1, s - float32(i0)
}

// pixelScale maps a uint8 pixel p to p/127.5 - 1.
var pixelScale = func() (t [256]float32) {
	for p := range t {
		t[p] = float32(p)/127.5 - 1
	}
	return t
}()
