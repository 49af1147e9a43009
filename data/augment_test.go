package data

import (
	"math"
	"slices"
	"testing"
)

// rampCanvas is a size×size×channels canvas with value 10·y + x + 50·c.
func rampCanvas(size, channels int) []uint8 {
	c := make([]uint8, size*size*channels)
	for y := range size {
		for x := range size {
			for k := range channels {
				c[(y*size+x)*channels+k] = uint8(10*y + x + 50*k)
			}
		}
	}
	return c
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-5 }

func TestAugmentRender(t *testing.T) {
	const size, channels = 4, 2
	in := rampCanvas(size, channels)
	out := make([]float32, len(in))
	at := func(y, x, c int) float32 { return out[(y*size+x)*channels+c] }
	src := func(y, x, c int) float32 { return float32(in[(y*size+x)*channels+c])/127.5 - 1 }

	augmentation{side: size}.render(out, in, size, channels)
	for i, v := range in {
		if out[i] != pixelScale[v] {
			t.Fatalf("identity: value %d = %v, want %v", i, out[i], pixelScale[v])
		}
	}
	augmentation{side: size, flip: true}.render(out, in, size, channels)
	for y := range size {
		for x := range size {
			for c := range channels {
				if at(y, x, c) != src(y, size-1-x, c) {
					t.Fatalf("flip: (y=%d, x=%d, c=%d) = %v, want %v", y, x, c, at(y, x, c), src(y, size-1-x, c))
				}
			}
		}
	}
	// Crop [1, 3) × [1, 3) resized 2 → 4: output x samples crop x' = (x + 0.5)/2 - 0.5,
	// i.e. -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
	crop := augmentation{top: 1, left: 1, side: 2}
	crop.render(out, in, size, channels)
	lerp := func(a, b, f float32) float32 { return a + f*(b-a) }
	for c := range channels {
		want := [][]float32{
			{src(1, 1, c), lerp(src(1, 1, c), src(1, 2, c), 0.25), lerp(src(1, 1, c), src(1, 2, c), 0.75), src(1, 2, c)},
		}
		for x, w := range want[0] {
			if !near(at(0, x, c), w) {
				t.Errorf("crop: (y=0, x=%d, c=%d) = %v, want %v", x, c, at(0, x, c), w)
			}
		}
		if !near(at(3, 3, c), src(2, 2, c)) || !near(at(1, 0, c), lerp(src(1, 1, c), src(2, 1, c), 0.25)) {
			t.Errorf("crop: corner %v / edge %v", at(3, 3, c), at(1, 0, c))
		}
	}
	flipped := make([]float32, len(out))
	augmentation{top: 1, left: 1, side: 2, flip: true}.render(flipped, in, size, channels)
	for y := range size {
		for x := range size {
			for c := range channels {
				if flipped[(y*size+x)*channels+c] != at(y, size-1-x, c) {
					t.Fatalf("crop+flip is not the mirror of crop at (%d, %d, %d)", y, x, c)
				}
			}
		}
	}
	flat := make([]uint8, len(in))
	for i := range flat {
		flat[i] = 77
	}
	crop.render(out, flat, size, channels)
	for i := range out {
		if !near(out[i], pixelScale[77]) {
			t.Fatalf("crop of a flat image: value %d = %v, want %v", i, out[i], pixelScale[77])
		}
	}
}

func TestDrawAugmentation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ImageSize = 32
	if a := drawAugmentation(cfg, 1, 0, 0); a != (augmentation{side: 32}) {
		t.Errorf("augmentation off: got %+v", a)
	}
	cfg.HFlip, cfg.CropScale = true, 0.5
	minSide := int(math.Round(32 * math.Sqrt(0.5)))
	flips, crops := 0, 0
	for i := range int64(400) {
		a := drawAugmentation(cfg, 9, 3, i)
		if a != drawAugmentation(cfg, 9, 3, i) {
			t.Fatal("drawAugmentation is not deterministic")
		}
		if a.side < minSide || a.side > 32 || a.top < 0 || a.left < 0 || a.top+a.side > 32 || a.left+a.side > 32 {
			t.Fatalf("index %d: crop %+v outside the canvas or below the minimum side %d", i, a, minSide)
		}
		if a.flip {
			flips++
		}
		if a.side < 32 {
			crops++
		}
	}
	if flips < 150 || flips > 250 || crops < 300 {
		t.Errorf("400 draws: %d flips (want about 200), %d crops", flips, crops)
	}
	other := []augmentation{drawAugmentation(cfg, 10, 3, 0), drawAugmentation(cfg, 9, 4, 0), drawAugmentation(cfg, 9, 3, 1)}
	if base := drawAugmentation(cfg, 9, 3, 0); slices.Contains(other, base) {
		t.Errorf("changing the seed, epoch or index kept the augmentation %+v: %+v", base, other)
	}
	flipOnly := cfg
	flipOnly.CropScale = 1
	for i := range int64(20) { // the flip draw does not depend on whether cropping is on
		if drawAugmentation(flipOnly, 9, 3, i).flip != drawAugmentation(cfg, 9, 3, i).flip {
			t.Fatalf("index %d: turning the crop off changed the flip", i)
		}
	}
}

// TestStreamHFlip: with hflip on, each example is its idPNG or its mirror image, both occur,
// and the choice is the same for the same (seed, epoch, index).
func TestStreamHFlip(t *testing.T) {
	train, _ := layoutFixture(t, nil)
	cfg := idConfig(train)
	cfg.HFlip = true
	s := openStream(t, cfg, 51, 8)
	b := take(t, s, 1).batches[0]
	mirrored := 0
	hwc := idSide * idSide
	for i := range b.B {
		x := b.X[i*hwc : (i+1)*hwc]
		if x[0] == pixelScale[200] && x[1] == pixelScale[200] { // mirrored: id pixels at x = 3, 2
			mirrored++
			x = slices.Clone(x)
			for y := range idSide {
				slices.Reverse(x[y*idSide : (y+1)*idSide])
			}
			copy(b.X[i*hwc:], x)
		}
	}
	if mirrored == 0 || mirrored == b.B {
		t.Errorf("%d of %d examples mirrored, want some but not all", mirrored, b.B)
	}
	ids := make([]int, b.B)
	for i := range ids {
		ids[i] = exampleID(b, i)
	}
	if slices.Sort(ids); ids[0] != 0 || ids[len(ids)-1] != 210 {
		t.Errorf("un-mirrored ids %v do not recover the rows", ids)
	}
}
