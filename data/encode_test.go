package data

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestEncodeFile: a latent copy keeps labels, captions, ids, class names and vocabulary, stores
// each image's latent (here the mean of each 4×4 block of its 28×28 image padded to 32×32:
// [8, 8, 1]) with its shape, records 1/std of all latent values as the scale, and is
// byte-for-byte the same when written again.
func TestEncodeFile(t *testing.T) {
	f := writeMNISTFixture(t, "test", 24, false)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.parquet")
	if _, err := ImportMNIST(f.dir, "test", in); err != nil {
		t.Fatal(err)
	}
	pool := func(imgs []float32, n int) ([]float32, error) {
		out := make([]float32, n*64)
		for i := range n {
			for y := range 32 {
				for x := range 32 {
					out[i*64+(y/4)*8+x/4] += imgs[i*1024+y*32+x] / 16
				}
			}
		}
		return out, nil
	}
	shape := []int32{8, 8, 1}
	var files [][]byte
	for k := range 2 {
		out := filepath.Join(dir, "lat"+strconv.Itoa(k)+".parquet")
		sum, err := EncodeFile(in, out, 32, 1, shape, pool, false, fixedMeta(map[string]string{MetaAutoencoder: `{"run":"x"}`}), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
		if k > 0 {
			continue
		}
		scale, ae, err := ReadLatentMeta(out)
		if err != nil || ae != `{"run":"x"}` || math.Abs(scale-sum.Scale) > 1e-12 || sum.Rows != 24 {
			t.Fatalf("metadata: scale %g (summary %g), autoencoder %q, rows %d, %v", scale, sum.Scale, ae, sum.Rows, err)
		}
		s, err := openSource(out, 64)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := s.readGroup(0, ColLatent, ColLatentShape, ColLabel, ColCaption)
		if err != nil {
			t.Fatal(err)
		}
		imgs, _ := readImages(t, in)
		want, _ := pool(imgs, 24)
		lat, lab, capt := tableColumn(tbl, ColLatent), tableColumn(tbl, ColLabel), tableColumn(tbl, ColCaption)
		var s1, s2 float64
		for i := range 24 {
			if got := lat.floatsAt(i); !slices.Equal(got, want[i*64:(i+1)*64]) {
				t.Fatalf("row %d: latent differs", i)
			}
			if int(lab.int64At(i)) != int(f.labels[i]) || capt.stringAt(i) == "" {
				t.Fatalf("row %d: label %d (want %d), caption %q", i, lab.int64At(i), f.labels[i], capt.stringAt(i))
			}
			for _, v := range want[i*64 : (i+1)*64] {
				s1, s2 = s1+float64(v), s2+float64(v)*float64(v)
			}
		}
		mean := s1 / (24 * 64)
		if std := math.Sqrt(s2/(24*64) - mean*mean); math.Abs(sum.Scale*std-1) > 1e-9 {
			t.Fatalf("scale %g, want 1/%g", sum.Scale, std)
		}
		if len(s.classNames) != 10 || len(s.vocab) < 3 {
			t.Fatalf("class names %v, vocabulary %d tokens", s.classNames, len(s.vocab))
		}
		tbl.Release()
		s.close()
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("encoding the same file twice gives different bytes")
	}
	// The loader reads latent rows: batches of [8, 8, 1] latents times the file's scale, labels kept.
	cfg := DefaultConfig()
	cfg.Train = filepath.Join(dir, "lat0.parquet")
	st, err := Open(cfg, 24, 0)
	if err != nil {
		t.Fatal(err)
	}
	info := st.Info()
	scale, _, _ := ReadLatentMeta(cfg.Train)
	if info.H != 8 || info.W != 8 || info.C != 1 || info.LatentScale != float64(float32(scale)) {
		t.Fatalf("latent stream info %+v, want 8×8×1 and scale %g", info, scale)
	}
	b := NewBatch(info, cfg, 24)
	if err := st.Next(b); err != nil {
		t.Fatal(err)
	}
	st.Close()
	imgs, _ := readImages(t, in)
	want, _ := pool(imgs, 24)
	for i := range 24 {
		found := false
		for k := range 24 {
			match := int32(f.labels[k]) == b.Labels[i]
			for j := 0; match && j < 64; j++ {
				match = b.X[i*64+j] == want[k*64+j]*float32(scale)
			}
			found = found || match
		}
		if !found {
			t.Fatalf("batch row %d (label %d) is no input row's scaled latent", i, b.Labels[i])
		}
	}
	cfg.HFlip = true
	if _, err := Open(cfg, 4, 0); err == nil {
		t.Fatal("hflip on latent rows accepted")
	}
	if _, _, err := ReadLatentMeta(in); err == nil {
		t.Fatal("an image file passed as a latent file")
	}
}

// readImages decodes every image of path as the loader does (32×32×1).
func readImages(t *testing.T, path string) ([]float32, int) {
	t.Helper()
	s, err := openSource(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	tbl, err := s.readGroup(0, ColImage)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	g := &ScoreGroup{Path: path, Rows: int(s.groupRows[0]), src: s, tbl: tbl}
	imgs, err := g.Images(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	return imgs, g.Rows
}

// fixedMeta is an EncodeFile metadata function that ignores the summary.
func fixedMeta(m map[string]string) func(EncodeSummary) (map[string]string, error) {
	return func(EncodeSummary) (map[string]string, error) { return m, nil }
}

// TestEncodeFileChannelNorm: with channelNorm every channel of the written latents is
// (z − mean_c)/std_c with the per-channel statistics of a float64 reference (here channel 0 is the
// 4×4 block mean and channel 1 is 3·mean + 1, so its raw std is 3× channel 0's), the summary
// passed to the metadata function carries those statistics, and the global scale is then 1.
func TestEncodeFileChannelNorm(t *testing.T) {
	f := writeMNISTFixture(t, "test", 24, false)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.parquet"), filepath.Join(dir, "lat.parquet")
	if _, err := ImportMNIST(f.dir, "test", in); err != nil {
		t.Fatal(err)
	}
	enc := func(imgs []float32, n int) ([]float32, error) {
		z := make([]float32, n*128)
		for i := range n {
			for y := range 32 {
				for x := range 32 {
					z[i*128+((y/4)*8+x/4)*2] += imgs[i*1024+y*32+x] / 16
				}
			}
			for k := range 64 {
				z[i*128+k*2+1] = 3*z[i*128+k*2] + 1
			}
		}
		return z, nil
	}
	imgs, _ := readImages(t, in)
	raw, _ := enc(imgs, 24)
	var m, sd [2]float64
	for k, v := range raw {
		m[k%2] += float64(v) / (24 * 64)
	}
	for k, v := range raw {
		d := float64(v) - m[k%2]
		sd[k%2] += d * d / (24 * 64)
	}
	sd[0], sd[1] = math.Sqrt(sd[0]), math.Sqrt(sd[1])
	var seen EncodeSummary
	sum, err := EncodeFile(in, out, 32, 1, []int32{8, 8, 2}, enc, true, func(s EncodeSummary) (map[string]string, error) {
		seen = s
		return map[string]string{MetaAutoencoder: `{"run":"x"}`}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 2 {
		if math.Abs(seen.ChannelMean[c]-m[c]) > 1e-6 || math.Abs(seen.ChannelStd[c]-sd[c]) > 1e-6*sd[c] {
			t.Fatalf("channel %d: mean %g std %g, want %g %g", c, seen.ChannelMean[c], seen.ChannelStd[c], m[c], sd[c])
		}
	}
	if !sum.ChannelNorm || math.Abs(sum.Scale-1) > 1e-5 || math.Abs(sd[1]/sd[0]-3) > 1e-5 {
		t.Fatalf("summary %+v: want channel norm and scale 1 (raw std ratio %g)", sum, sd[1]/sd[0])
	}
	s, err := openSource(out, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	tbl, err := s.readGroup(0, ColLatent)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	lat := tableColumn(tbl, ColLatent)
	for i := range 24 {
		got := lat.floatsAt(i)
		for k, v := range got {
			want := (float64(raw[i*128+k]) - m[k%2]) / sd[k%2]
			if math.Abs(float64(v)-want) > 1e-5 {
				t.Fatalf("row %d value %d: %g, want %g", i, k, v, want)
			}
		}
	}
}
