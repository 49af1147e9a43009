package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"runtime"
	"sync"
)

// imageFormat returns the decoder pair of b's format, sniffed from its magic bytes.
func imageFormat(b []byte) (name string, decodeConfig func([]byte) (image.Config, error), decode func([]byte) (image.Image, error), err error) {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png",
			func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) },
			func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }, nil
	case bytes.HasPrefix(b, []byte{0xff, 0xd8}):
		return "jpeg",
			func(b []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(b)) },
			func(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }, nil
	case len(b) == 0:
		return "", nil, nil, errors.New("decode image: empty")
	}
	return "", nil, nil, errors.New("decode image: not a PNG or JPEG (unknown magic bytes)")
}

// decodeImage decodes the PNG or JPEG b and writes it centered into dst, a zeroed (black)
// canvas uint8 [size, size, channels]. Gray images are replicated to 3 channels; colour
// images are composited over black (premultiplied alpha) and, for 1 channel, converted to
// luma with image/color's Gray model. It fails, without decoding the pixels, if the header
// declares an image larger than size on either side, so a corrupt header cannot make it
// allocate much.
func decodeImage(dst []uint8, b []byte, size, channels int) error {
	if len(dst) != size*size*channels {
		return fmt.Errorf("decode image: canvas has %d values, want %d×%d×%d", len(dst), size, size, channels)
	}
	name, decodeConfig, decode, err := imageFormat(b)
	if err != nil {
		return err
	}
	hdr, err := decodeConfig(b)
	if err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	if hdr.Width > size || hdr.Height > size {
		return fmt.Errorf("image is %dx%d (width x height), larger than data.image_size %d", hdr.Width, hdr.Height, size)
	}
	img, err := decode(b)
	if err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	if w > size || h > size || w < 0 || h < 0 {
		return fmt.Errorf("image is %dx%d (width x height), larger than data.image_size %d", w, h, size)
	}
	top, left := (size-h)/2, (size-w)/2
	for y := range h {
		out := dst[((top+y)*size+left)*channels : ((top+y)*size+left+w)*channels]
		if g, ok := img.(*image.Gray); ok {
			copyGrayRow(out, g.Pix[y*g.Stride:y*g.Stride+w], channels)
			continue
		}
		for x := range w {
			c := color.RGBAModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.RGBA)
			if channels == 1 {
				out[x] = color.GrayModel.Convert(c).(color.Gray).Y
			} else {
				out[3*x], out[3*x+1], out[3*x+2] = c.R, c.G, c.B
			}
		}
	}
	return nil
}

// copyGrayRow copies one row of gray pixels, replicating them when channels is 3.
func copyGrayRow(out, gray []uint8, channels int) {
	if channels == 1 {
		copy(out, gray)
		return
	}
	for x, v := range gray {
		out[3*x], out[3*x+1], out[3*x+2] = v, v, v
	}
}

// parallelRange splits [0, n) into one contiguous chunk per worker (runtime.GOMAXPROCS)
// and runs fn on each concurrently. fn should stop at its first error; parallelRange then
// returns the error of the lowest chunk, i.e. of the lowest failing index, so that errors
// do not depend on scheduling.
func parallelRange(n int, fn func(lo, hi int) error) error {
	const minChunk = 64 // below this, goroutines cost more than they save
	workers := min(runtime.GOMAXPROCS(0), (n+minChunk-1)/minChunk)
	if workers <= 1 {
		return fn(0, n)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for k := range workers {
		lo, hi := k*n/workers, (k+1)*n/workers
		wg.Go(func() { errs[k] = fn(lo, hi) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
