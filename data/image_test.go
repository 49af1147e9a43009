package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
)

// encodeJPEG returns img as JPEG bytes (quality 95).
func encodeJPEG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngBytes returns img as PNG bytes.
func pngBytes(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// hugePNG returns a PNG header (valid IHDR and CRC) declaring a 100000×100000 gray image.
func hugePNG() []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], 100000)
	binary.BigEndian.PutUint32(ihdr[4:], 100000)
	ihdr[8] = 8 // bit depth; colour type 0 (gray)
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestDecodeImageJPEG(t *testing.T) {
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	for k := range gray.Pix {
		gray.Pix[k] = 128
	}
	rgb := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for k := 0; k < len(rgb.Pix); k += 4 {
		copy(rgb.Pix[k:], []uint8{200, 60, 30, 255})
	}
	for _, tc := range []struct {
		name     string
		img      image.Image
		channels int
		want     []uint8 // expected centre pixel, ±3 for JPEG loss
	}{
		{"gray to 1", gray, 1, []uint8{128}},
		{"gray to 3", gray, 3, []uint8{128, 128, 128}},
		{"colour to 3", rgb, 3, []uint8{200, 60, 30}},
		{"colour to 1", rgb, 1, []uint8{color.GrayModel.Convert(color.RGBA{200, 60, 30, 255}).(color.Gray).Y}},
	} {
		dst := make([]uint8, 6*6*tc.channels)
		if err := decodeImage(dst, encodeJPEG(t, tc.img), 6, tc.channels); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		centre := dst[(2*6+2)*tc.channels : (2*6+3)*tc.channels]
		for c, w := range tc.want {
			if d := int(centre[c]) - int(w); d < -3 || d > 3 {
				t.Errorf("%s: centre pixel %v, want about %v", tc.name, centre, tc.want)
			}
		}
		if corner := dst[:tc.channels]; corner[0] != 0 {
			t.Errorf("%s: padding corner %v, want black", tc.name, corner)
		}
	}
	err := decodeImage(make([]uint8, 4*4), hugePNG(), 4, 1)
	if err == nil || !strings.Contains(err.Error(), "100000x100000") {
		t.Errorf("huge PNG header: err = %v, want a size error before decoding", err)
	}
}

// FuzzDecodeRow: decoding arbitrary bytes as a row's image, then augmenting it, never
// panics, and a decoded image always yields values in [-1, 1].
func FuzzDecodeRow(f *testing.F) {
	gray := image.NewGray(image.Rect(0, 0, 3, 5))
	for k := range gray.Pix {
		gray.Pix[k] = uint8(40 * k)
	}
	nrgba := image.NewNRGBA(image.Rect(0, 0, 4, 2))
	for k := range nrgba.Pix {
		nrgba.Pix[k] = uint8(31 * k)
	}
	grayPNG := pngBytes(f, gray)
	for _, seed := range [][]byte{
		grayPNG, pngBytes(f, nrgba), encodeJPEG(f, gray), encodeJPEG(f, nrgba), hugePNG(),
		grayPNG[:len(grayPNG)/2], {0xff, 0xd8, 0xff}, nil, []byte("GIF89a"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, shape := range [][2]int{{4, 1}, {6, 3}} {
			size, channels := shape[0], shape[1]
			canvas := make([]uint8, size*size*channels)
			if err := decodeImage(canvas, b, size, channels); err != nil {
				continue
			}
			out := make([]float32, len(canvas))
			for _, a := range []augmentation{{side: size}, {flip: true, side: size}, {top: 1, left: 0, side: size - 1, flip: true}} {
				a.render(out, canvas, size, channels)
				for i, v := range out {
					if !(v >= -1 && v <= 1) {
						t.Fatalf("augmentation %+v: value %d = %v outside [-1, 1]", a, i, v)
					}
				}
			}
		}
	})
}
