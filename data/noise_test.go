package data

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
)

// noiseHWC is the H·W·C of an idConfig batch (4×4×1).
const noiseHWC = idSide * idSide

// noiseOf is the x_T stored with row id: noiseHWC distinct values, negative ones and values
// not exact in binary included, so that any reordering or rounding shows.
func noiseOf(id int) []float32 {
	v := make([]float32, noiseHWC)
	for k := range v {
		v[k] = float32(id)*0.25 - float32(k)*0.1 + 1e-7*float32(k*k)
	}
	return v
}

// idPixels is example id of an idPNG batch: X [H, W, C] flattened, in [-1, 1].
func idPixels(id int) []float32 {
	x := make([]float32, noiseHWC)
	for k := range x {
		x[k] = float32(200)/127.5 - 1
	}
	x[0], x[1] = float32(uint8(id))/127.5-1, float32(uint8(id>>8))/127.5-1
	return x
}

// writeNoiseRows writes rows ids 0…n-1 (idPNG image, label id % 3, noise(id)) with the
// package's Writer in row groups of groupRows; noise nil writes no noise column.
func writeNoiseRows(t *testing.T, path string, n, groupRows int, noise func(id int) []float32) {
	t.Helper()
	cols := []string{ColImage, ColLabel}
	if noise != nil {
		cols = append(cols, ColNoise)
	}
	w, err := NewWriter(path, cols, WriterOptions{RowGroupRows: groupRows})
	if err != nil {
		t.Fatal(err)
	}
	for id := range n {
		r := Row{Image: idPNG(t, id), Label: int32(id % 3), HasLabel: true}
		if noise != nil {
			r.Noise = noise(id)
		}
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// noiseConfig is idConfig(path) with data.noise on.
func noiseConfig(path string) Config {
	cfg := idConfig(path)
	cfg.Noise = true
	return cfg
}

// TestStreamNoisePairs: noise written by the Writer comes back in Batch.Noise bit for bit,
// with the image and label of its own row, over shuffled epochs.
func TestStreamNoisePairs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pairs.parquet")
	writeNoiseRows(t, path, 10, 4, noiseOf)
	f := wtRead(t, path)
	if fld, ok := f.rec.Schema().FieldsByName(ColNoise); !ok || !fld[0].Nullable || !slices.Equal(wtList[float32](t, f.cols[ColNoise], 3), noiseOf(3)) {
		t.Fatalf("written noise column: %v", f.rec.Schema())
	}
	cfg := noiseConfig(path)
	s := openStream(t, cfg, 3, 5)
	d := take(t, s, 7) // 21 rows: two epochs and a bit, across row groups
	for bi, b := range d.batches {
		if len(b.Noise) != b.B*b.H*b.W*b.C || b.H*b.W*b.C != noiseHWC {
			t.Fatalf("batch %d: len(Noise) = %d, shape [%d, %d, %d, %d]", bi, len(b.Noise), b.B, b.H, b.W, b.C)
		}
		for i := range b.B {
			id := exampleID(b, i)
			if x := b.X[i*noiseHWC : (i+1)*noiseHWC]; !slices.Equal(x, idPixels(id)) {
				t.Fatalf("batch %d example %d (row %d): X = %v, want %v", bi, i, id, x, idPixels(id))
			}
			if b.Labels[i] != int32(id%3) {
				t.Errorf("batch %d example %d (row %d): label %d, want %d", bi, i, id, b.Labels[i], id%3)
			}
			if got := b.Noise[i*noiseHWC : (i+1)*noiseHWC]; !slices.Equal(got, noiseOf(id)) {
				t.Fatalf("batch %d example %d (row %d): noise %v, want %v", bi, i, id, got, noiseOf(id))
			}
		}
	}
	epoch0 := d.ids()[:10]
	slices.Sort(epoch0)
	if !slices.Equal(epoch0, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("epoch 0 rows %v, want a permutation of 0…9", epoch0)
	}
	if st := s.Stats(); st.Skipped != 0 {
		t.Errorf("stats %s: want no skipped rows", st)
	}
}

// badNoise is noiseOf except row 5 (null) and row 6 (one value short).
func badNoise(id int) []float32 {
	switch id {
	case 5:
		return nil
	case 6:
		return noiseOf(id)[:noiseHWC-1]
	}
	return noiseOf(id)
}

// TestStreamNoiseBadRows: a null noise or one of the wrong length is a bad row naming the
// file, the row and the column: skipped and reported, or fatal with data.bad_rows "fail".
func TestStreamNoiseBadRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.parquet")
	writeNoiseRows(t, path, 10, 4, badNoise)
	s := openStream(t, noiseConfig(path), 2, 1)
	d := take(t, s, 5) // 10 good rows: past every order position of epoch 0
	if ids := d.ids(); slices.Contains(ids, 5) || slices.Contains(ids, 6) {
		t.Errorf("delivered rows %v include a bad noise row", ids)
	}
	want := map[int64]string{5: "null noise", 6: "15 values, want 16"}
	st := s.Stats()
	if len(st.BadRows) != 2 {
		t.Fatalf("BadRows = %v, want rows 5 and 6", st.BadRows)
	}
	for _, r := range st.BadRows {
		if r.File != path || !strings.Contains(r.Err, "column "+ColNoise+": "+want[r.Row]) {
			t.Errorf("bad row %v: want file %s, column %s and %q", r, path, ColNoise, want[r.Row])
		}
	}

	path = filepath.Join(t.TempDir(), "null.parquet")
	writeNoiseRows(t, path, 10, 4, func(id int) []float32 { return badNoise(id % 6) }) // only row 5 is bad
	cfg := noiseConfig(path)
	cfg.BadRows = BadRowsFail
	s = openStream(t, cfg, 2, 1)
	b := NewBatch(s.Info(), cfg, 2)
	var err error
	for range 6 {
		if err = s.Next(b); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), path+": row 5: column noise: null noise") {
		t.Fatalf("err = %v, want %s: row 5: column noise", err, path)
	}
	t.Logf("fatal bad noise: %v", err)
}

// TestStreamNoiseColumnMissing: data.noise on a file without the column fails at Open,
// naming the file and the column.
func TestStreamNoiseColumnMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain.parquet")
	writeNoiseRows(t, path, 4, 4, nil)
	_, err := Open(noiseConfig(path), 2, 0)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "column "+ColNoise) {
		t.Fatalf("Open = %v, want an error naming %s and column %s", err, path, ColNoise)
	}
	t.Logf("missing column: %v", err)
}

// TestStreamNoiseOff: without data.noise the column is neither required nor read: even a
// file with bad noise rows streams every row in the order data.noise would give, and
// Batch.Noise is nil.
func TestStreamNoiseOff(t *testing.T) {
	// Same base name, same layout: the same fingerprint and order.
	good, bad := filepath.Join(t.TempDir(), "pairs.parquet"), filepath.Join(t.TempDir(), "pairs.parquet")
	writeNoiseRows(t, good, 10, 4, noiseOf)
	writeNoiseRows(t, bad, 10, 4, badNoise)
	on := take(t, openStream(t, noiseConfig(good), 3, 7), 4)
	s := openStream(t, idConfig(bad), 3, 7)
	if b := NewBatch(s.Info(), s.cfg, 3); b.Noise != nil {
		t.Fatalf("NewBatch without data.noise: Noise has %d values, want nil", len(b.Noise))
	}
	off := take(t, s, 4)
	for i, b := range off.batches {
		if b.Noise != nil {
			t.Fatalf("batch %d: Noise = %v, want nil", i, b.Noise)
		}
		if !slices.Equal(b.X, on.batches[i].X) || !slices.Equal(b.Labels, on.batches[i].Labels) || off.ends[i] != on.ends[i] {
			t.Fatalf("batch %d: rows %v ending at %v, with data.noise %v ending at %v", i, off.ids(), off.ends, on.ids(), on.ends)
		}
	}
	if st := s.Stats(); st.Skipped != 0 {
		t.Errorf("stats %s: the noise column was checked without data.noise", st)
	}
}

func TestValidateNoise(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; nil: valid
	}{
		{"noise alone", func(c *Config) { c.Noise = true }, nil},
		{"hflip alone", func(c *Config) { c.HFlip = true }, nil},
		{"crop alone", func(c *Config) { c.CropScale = 0.5 }, nil},
		{"noise and hflip", func(c *Config) { c.Noise, c.HFlip = true, true }, []string{"data.noise: ", "data.hflip"}},
		{"noise and crop", func(c *Config) { c.Noise, c.CropScale = true, 0.5 }, []string{"data.noise: ", "data.crop_scale 0.5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.modify(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("Validate = %v, want an error containing %q", err, w)
				}
			}
		})
	}
	c := DefaultConfig()
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: &c, ErrorUnused: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(map[string]any{"noise": true}); err != nil || !c.Noise {
		t.Errorf("decoding {noise: true}: %v, Noise = %v", err, c.Noise)
	}
}
