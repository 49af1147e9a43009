package data

import (
	"fmt"
	"image"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestStreamCaptionTokens(t *testing.T) {
	captions := []string{"a red fox", "Blue whale, swimming", "fox", "an unseen zebra crossing the wide road"}
	caption := func(id int) string { return captions[id%len(captions)] }
	vocab := BuildVocab(captions[:3], 0) // "zebra" etc. are unknown words
	path := filepath.Join(fixtureDir(t, map[string]fixture{"c.parquet": {n: 12, groupRows: 5, caption: caption, vocab: vocab}}), "c.parquet")
	cfg := idConfig(path)
	cfg.Condition, cfg.MaxTokens = ConditionCaption, 3
	s := openStream(t, cfg, 5, 1)
	if info := s.Info(); !slices.Equal(info.Vocab, vocab) || info.MaxTokens != 3 || info.Condition != ConditionCaption {
		t.Fatalf("Info = %+v", info)
	}
	unknown := 0
	for _, b := range take(t, s, 6).batches {
		if b.MaxTokens != 3 || len(b.Tokens) != 5*3 || b.TextEmbedding != nil {
			t.Fatalf("batch: MaxTokens %d, %d tokens, embedding %v", b.MaxTokens, len(b.Tokens), b.TextEmbedding)
		}
		for i := range b.B {
			id := exampleID(b, i)
			got, want := b.Tokens[i*3:(i+1)*3], Encode(vocab, caption(id), 3)
			if !slices.Equal(got, want) {
				t.Fatalf("row %d (%q): tokens %v, want %v", id, caption(id), got, want)
			}
			if slices.Contains(got, UnkID) {
				unknown++
			}
		}
	}
	if unknown == 0 {
		t.Error("no unknown token seen: the test does not exercise the vocabulary")
	}
	if got := Encode(vocab, "fox", 3); got[0] == UnkID || got[1] != PadID {
		t.Errorf(`Encode("fox") = %v, want a known id then padding`, got)
	}
}

func TestStreamTextEmbedding(t *testing.T) {
	embedding := func(id int) []float32 {
		if id == 7 {
			return nil // null: this row is skipped like an undecodable image
		}
		return []float32{float32(id), -float32(id), 0.5}
	}
	path := filepath.Join(fixtureDir(t, map[string]fixture{"e.parquet": {n: 10, groupRows: 4, embedding: embedding}}), "e.parquet")
	cfg := idConfig(path)
	cfg.Condition = ConditionTextEmbedding
	s := openStream(t, cfg, 3, 1)
	if info := s.Info(); info.EmbeddingDim != 3 {
		t.Fatalf("Info.EmbeddingDim = %d, want 3", info.EmbeddingDim)
	}
	d := take(t, s, 6)
	for _, b := range d.batches {
		for i := range b.B {
			id := exampleID(b, i)
			if got := b.TextEmbedding[i*3 : (i+1)*3]; !slices.Equal(got, embedding(id)) {
				t.Fatalf("row %d: embedding %v, want %v", id, got, embedding(id))
			}
		}
	}
	if slices.Contains(d.ids(), 7) {
		t.Error("the row with a null embedding was delivered")
	}
	if st := s.Stats(); st.Skipped == 0 || len(st.BadRows) != 1 || st.BadRows[0].Row != 7 || !strings.Contains(st.BadRows[0].Err, ColTextEmbedding) {
		t.Errorf("stats %+v: want row 7 reported with column %s", st, ColTextEmbedding)
	}
}

// badRowsFixture writes ids 0…19 where row 4 is not an image, row 11 is null and row 15
// is larger than the 4×4 canvas.
func badRowsFixture(t *testing.T) string {
	big := encodePNG(t, image.NewGray(image.Rect(0, 0, 8, 8)))
	img := func(id int) []byte {
		switch id {
		case 4:
			return []byte("GIF89a not supported")
		case 11:
			return nil
		case 15:
			return big
		}
		return idPNG(t, id)
	}
	return filepath.Join(fixtureDir(t, map[string]fixture{"bad.parquet": {n: 20, groupRows: 6, image: img}}), "bad.parquet")
}

func TestStreamBadRowsSkipped(t *testing.T) {
	path := badRowsFixture(t)
	s := openStream(t, idConfig(path), 1, 3)
	d := take(t, s, 34) // two epochs of 17 good rows
	ids := d.ids()
	slices.Sort(ids)
	var want []int
	for id := range 20 {
		if id != 4 && id != 11 && id != 15 {
			want = append(want, id, id)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("delivered ids %v, want every good row twice", ids)
	}
	st, p := s.Stats(), s.Position()
	if st.Skipped != p.Epoch*20+p.Index-34 || st.Skipped < 3 {
		t.Errorf("Skipped = %d at %+v after 34 good rows", st.Skipped, p)
	}
	wantErr := map[int64]string{4: "not a PNG or JPEG", 11: "null image", 15: "larger than data.image_size"}
	if len(st.BadRows) != 3 {
		t.Fatalf("BadRows = %v, want rows 4, 11, 15", st.BadRows)
	}
	for _, r := range st.BadRows {
		if r.File != path || !strings.Contains(r.Err, wantErr[r.Row]) || !strings.Contains(r.Err, "column image") {
			t.Errorf("bad row %v: want file %s and an error containing %q", r, path, wantErr[r.Row])
		}
	}
	if line := st.String(); !strings.Contains(line, path+": row ") || !strings.Contains(line, "skipped") {
		t.Errorf("Stats.String() = %q, want it to name the file and rows", line)
	}
	t.Logf("stats: %s", st)
}

func TestStreamBadRowsFail(t *testing.T) {
	path := badRowsFixture(t)
	cfg := idConfig(path)
	cfg.BadRows = BadRowsFail
	s := openStream(t, cfg, 4, 3)
	b := NewBatch(s.Info(), cfg, 4)
	var err error
	for range 10 {
		if err = s.Next(b); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), path) || !regexp.MustCompile(`row (4|11|15): column image`).MatchString(err.Error()) ||
		!strings.Contains(err.Error(), "data.bad_rows") {
		t.Fatalf("err = %v, want the file, the bad row and data.bad_rows", err)
	}
	t.Logf("fatal bad row: %v", err)
	// The error names the first bad row in the order (kept row k is id k here).
	order := s.cat.epochOrder(3, 0, cfg.ShuffleBuffer)
	bad := func(k int32) bool { return k == 4 || k == 11 || k == 15 }
	first := slices.IndexFunc(order, bad)
	if want := "row " + fmt.Sprint(order[first]) + ": column image"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want the first bad row in the order (%s)", err, want)
	}
	if again := s.Next(b); again == nil || again.Error() != err.Error() {
		t.Errorf("Next after the failure: %v, want the same error", again)
	}
	// SetPosition clears the failure: resuming past the bad row works until the next one.
	if err := s.SetPosition(Position{Index: int64(first + 1), Fingerprint: s.Position().Fingerprint}); err != nil {
		t.Fatal(err)
	}
	err = s.Next(b)
	if next := slices.IndexFunc(order[first+1:], bad); next >= 4 || next < 0 {
		if err != nil {
			t.Errorf("after SetPosition past the bad row: %v", err)
		}
	} else if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("row %d:", order[first+1+next])) {
		t.Errorf("after SetPosition: err = %v, want the next bad row %d", err, order[first+1+next])
	}
}

// TestStreamAllRowsBad: a dataset none of whose rows decodes fails instead of spinning.
func TestStreamAllRowsBad(t *testing.T) {
	path := filepath.Join(fixtureDir(t, map[string]fixture{"x.parquet": {n: 5, groupRows: 5, image: func(int) []byte { return []byte("junk") }}}), "x.parquet")
	s := openStream(t, idConfig(path), 2, 0)
	if err := s.Next(NewBatch(s.Info(), s.cfg, 2)); err == nil || !strings.Contains(err.Error(), "no row decodes") {
		t.Errorf("err = %v, want no row decodes", err)
	}
}
