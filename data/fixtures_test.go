package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeIDX writes an idx ubyte file: big-endian magic, dims, then payload; gzipped if gz.
func writeIDX(t *testing.T, path string, gz bool, magic uint32, dims []uint32, payload []byte) {
	t.Helper()
	var raw bytes.Buffer
	binary.Write(&raw, binary.BigEndian, magic)
	binary.Write(&raw, binary.BigEndian, dims)
	raw.Write(payload)
	out := raw.Bytes()
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(out)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		out = z.Bytes()
		path += ".gz"
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// mnistFixture is a synthetic MNIST split: n random 28×28 images, labels i*7 % 10.
type mnistFixture struct {
	dir    string
	images [][]uint8
	labels []uint8
}

// writeMNISTFixture writes split ("train" or "test") idx files into a fresh temp dir.
func writeMNISTFixture(t *testing.T, split string, n int, gz bool) mnistFixture {
	t.Helper()
	f := mnistFixture{dir: t.TempDir()}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	var pixels []byte
	for i := range n {
		img := make([]uint8, mnistSide*mnistSide)
		for k := range img {
			img[k] = uint8(rng.IntN(256))
		}
		img[0], img[len(img)-1] = 255, 1 // exercise both extremes and corners
		f.images = append(f.images, img)
		f.labels = append(f.labels, uint8(i*7%10))
		pixels = append(pixels, img...)
	}
	prefix := mnistFilePrefix[split]
	writeIDX(t, filepath.Join(f.dir, prefix+"-images-idx3-ubyte"), gz, idxMagicImages,
		[]uint32{uint32(n), mnistSide, mnistSide}, pixels)
	writeIDX(t, filepath.Join(f.dir, prefix+"-labels-idx1-ubyte"), gz, idxMagicLabels,
		[]uint32{uint32(n)}, f.labels)
	return f
}

// encodePNG returns img as PNG bytes.
func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// grayRows returns n rows of 28×28 gray PNGs with pixel value (i + k) % 256 and label i % 10.
func grayRows(t *testing.T, n int) []imageRow {
	t.Helper()
	rows := make([]imageRow, n)
	for i := range rows {
		g := image.NewGray(image.Rect(0, 0, mnistSide, mnistSide))
		for k := range g.Pix {
			g.Pix[k] = uint8(i + k)
		}
		rows[i] = imageRow{PNG: encodePNG(t, g), Label: int32(i % 10), Caption: MNISTClassNames[i%10], Width: mnistSide, Height: mnistSide}
	}
	return rows
}

// checkPadded asserts that got, uint8 [size, size, channels], is want (h×w gray, row-major)
// centered on a zero canvas, each gray value replicated to every channel.
func checkPadded(t *testing.T, row int, got, want []uint8, w, h, size, channels int) {
	t.Helper()
	top, left := (size-h)/2, (size-w)/2
	for y := range size {
		for x := range size {
			var expect uint8
			if y >= top && y < top+h && x >= left && x < left+w {
				expect = want[(y-top)*w+(x-left)]
			}
			for c := range channels {
				if v := got[(y*size+x)*channels+c]; v != expect {
					t.Fatalf("row %d: pixel (y=%d, x=%d, c=%d) = %d, want %d (size %d, top %d, left %d)",
						row, y, x, c, v, expect, size, top, left)
				}
			}
		}
	}
}
