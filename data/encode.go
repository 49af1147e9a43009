package data

import (
	"fmt"
	"io"
	"math"
	"strconv"
)

// Latent-dataset metadata keys (`fewstep data encode`, latent diffusion's cached first stage).
const (
	// MetaLatentScale is the scale applied to latents before diffusion: 1/std over the encoded
	// file (LDM's scale_by_std, arXiv 2112.10752 §4.3.2 and its configs), as a decimal string.
	MetaLatentScale = "fewstep.latent_scale"
	// MetaAutoencoder describes the autoencoder that wrote the latents (JSON: run, checkpoint
	// step, file hash, config), so a latent teacher decodes with the same one.
	MetaAutoencoder = "fewstep.autoencoder"
)

// LatentEncoder maps a batch of images [n, size, size, channels] in [-1, 1] to latents (flattened) of
// shape latentShape each ([h, w, c]).
type LatentEncoder func(imgs []float32, n int) (latents []float32, err error)

// EncodeSummary describes a file written by EncodeFile.
type EncodeSummary struct {
	Rows        int
	LatentShape []int32
	Mean, Std   float64 // over every latent value written
	Scale       float64 // 1/Std, recorded as MetaLatentScale
	// ChannelMean and ChannelStd are the encoder's latents' statistics per channel (the last
	// axis of latentShape), before any normalization.
	ChannelMean, ChannelStd []float64
	// ChannelNorm reports that the written latents are (z − ChannelMean[c])/ChannelStd[c].
	ChannelNorm bool
}

// EncodeFile writes a latent copy of the image dataset in: every row's image (decoded as the
// loader does, size×size×channels) through encode, one row group at a time, to out with the
// columns latent, latent_shape (latentShape), label, caption and id of the input (those it has),
// its class names and vocabulary, MetaLatentScale = 1/std of all latent values written and the
// metadata meta returns for the summary (MetaAutoencoder). With channelNorm every channel is
// first shifted and scaled to mean 0 and std 1 over the file (the summary's ChannelMean and
// ChannelStd: meta must record them). The write is atomic (Writer). A row without an image is an
// error naming it.
func EncodeFile(in, out string, size, channels int, latentShape []int32, encode LatentEncoder, channelNorm bool, meta func(EncodeSummary) (map[string]string, error), progress io.Writer) (EncodeSummary, error) {
	sum := EncodeSummary{LatentShape: latentShape, ChannelNorm: channelNorm}
	src, err := openSource(in, DefaultConfig().ReadBatchRows)
	if err != nil {
		return sum, err
	}
	defer src.close()
	per := 1
	for _, d := range latentShape {
		per *= int(d)
	}
	type row struct {
		latent      []float32
		label       int32
		hasLabel    bool
		caption, id string
	}
	var rows []row
	nc := int(latentShape[len(latentShape)-1])
	c1, c2 := make([]float64, nc), make([]float64, nc)
	for g := range src.groupRows {
		names := []string{ColImage}
		for _, c := range []string{ColLabel, ColCaption, ColID} {
			if src.has(c) {
				names = append(names, c)
			}
		}
		tbl, err := src.readGroup(g, names...)
		if err != nil {
			return sum, err
		}
		first := int64(0)
		for _, n := range src.groupRows[:g] {
			first += n
		}
		grp := &ScoreGroup{Path: in, FirstRow: first, Rows: int(src.groupRows[g]), src: src, tbl: tbl}
		imgs, err := grp.Images(size, channels)
		if err != nil {
			tbl.Release()
			return sum, err
		}
		var labels []int32
		var valid []bool
		if src.has(ColLabel) {
			if labels, valid, err = grp.Labels(); err != nil {
				tbl.Release()
				return sum, err
			}
		}
		caps, ids := tableColumn(tbl, ColCaption), tableColumn(tbl, ColID)
		lat, err := encode(imgs, grp.Rows)
		if err != nil {
			tbl.Release()
			return sum, fmt.Errorf("data: encode %s, row group %d: %w", in, g, err)
		}
		if len(lat) != grp.Rows*per {
			tbl.Release()
			return sum, fmt.Errorf("data: encode %s: the encoder returned %d values for %d rows of %v", in, len(lat), grp.Rows, latentShape)
		}
		for i := range grp.Rows {
			r := row{latent: lat[i*per : (i+1)*per]}
			if labels != nil {
				r.label, r.hasLabel = labels[i], valid[i]
			}
			if caps.chunks != nil && !caps.isNull(i) {
				r.caption = caps.stringAt(i)
			}
			if ids.chunks != nil && !ids.isNull(i) {
				r.id = ids.stringAt(i)
			}
			for k, v := range r.latent {
				c1[k%nc] += float64(v)
				c2[k%nc] += float64(v) * float64(v)
			}
			rows = append(rows, r)
		}
		tbl.Release()
	}
	sum.Rows = len(rows)
	if sum.Rows == 0 {
		return sum, fmt.Errorf("data: encode %s: no rows", in)
	}
	perChannel := float64(sum.Rows * per / nc)
	var s1, s2 float64
	for c := range nc {
		m := c1[c] / perChannel
		sum.ChannelMean = append(sum.ChannelMean, m)
		sum.ChannelStd = append(sum.ChannelStd, math.Sqrt(max(c2[c]/perChannel-m*m, 0)))
		s1, s2 = s1+c1[c], s2+c2[c]
	}
	n := float64(sum.Rows * per)
	sum.Mean = s1 / n
	sum.Std = math.Sqrt(max(s2/n-sum.Mean*sum.Mean, 0))
	if channelNorm {
		for c, sd := range sum.ChannelStd {
			if sd == 0 {
				return sum, fmt.Errorf("data: encode %s: latent channel %d is constant (%g, std 0): no per-channel scale", in, c, sum.ChannelMean[c])
			}
		}
		s1, s2 = 0, 0
		for _, r := range rows {
			for k, v := range r.latent {
				x := (float64(v) - sum.ChannelMean[k%nc]) / sum.ChannelStd[k%nc]
				r.latent[k] = float32(x)
				s1, s2 = s1+float64(r.latent[k]), s2+float64(r.latent[k])*float64(r.latent[k])
			}
		}
		sum.Mean = s1 / n
		sum.Std = math.Sqrt(max(s2/n-sum.Mean*sum.Mean, 0))
	}
	if sum.Std == 0 {
		return sum, fmt.Errorf("data: encode %s: every latent value is %g (std 0): no scale", in, sum.Mean)
	}
	sum.Scale = 1 / sum.Std
	meta0, err := meta(sum)
	if err != nil {
		return sum, err
	}
	all := map[string]string{MetaLatentScale: strconv.FormatFloat(sum.Scale, 'g', -1, 64)}
	for k, v := range meta0 {
		all[k] = v
	}
	cols := []string{ColLatent, ColLatentShape, ColLabel, ColCaption, ColID}
	w, err := NewWriter(out, cols, WriterOptions{ClassNames: src.classNames, Vocab: src.vocab, Meta: all, Progress: progress, Total: sum.Rows})
	if err != nil {
		return sum, err
	}
	for _, r := range rows {
		if err := w.Write(Row{Latent: r.latent, LatentShape: latentShape, Label: r.label, HasLabel: r.hasLabel, Caption: r.caption, ID: r.id}); err != nil {
			w.Abort()
			return sum, err
		}
	}
	_, _, err = w.Close()
	return sum, err
}

// ReadLatentMeta returns a latent file's MetaLatentScale and MetaAutoencoder (an error names the
// file and key when the scale is missing or not a positive number).
func ReadLatentMeta(path string) (scale float64, autoencoder string, err error) {
	s, err := openSource(path, 1)
	if err != nil {
		return 0, "", err
	}
	defer s.close()
	md := s.pf.MetaData().KeyValueMetadata()
	v := md.FindValue(MetaLatentScale)
	if v == nil {
		return 0, "", fmt.Errorf("data: %s: metadata %s missing (not written by `fewstep data encode`)", path, MetaLatentScale)
	}
	if scale, err = strconv.ParseFloat(*v, 64); err != nil || !(scale > 0) || math.IsInf(scale, 0) {
		return 0, "", fmt.Errorf("data: %s: metadata %s = %q: want a positive number", path, MetaLatentScale, *v)
	}
	if a := md.FindValue(MetaAutoencoder); a != nil {
		autoencoder = *a
	}
	return scale, autoencoder, nil
}

// LatentMetaOf reports whether the training files train (comma-separated paths or globs) hold
// latent rows and, if so, the first file's path, latent scale and autoencoder metadata.
func LatentMetaOf(train string) (latent bool, path string, scale float64, autoencoder string, err error) {
	paths, err := expandGlobs(train)
	if err != nil {
		return false, "", 0, "", err
	}
	s, err := openSource(paths[0], 1)
	if err != nil {
		return false, "", 0, "", err
	}
	latent = s.has(ColLatent) && !s.has(ColImage)
	s.close()
	if !latent {
		return false, paths[0], 0, "", nil
	}
	scale, autoencoder, err = ReadLatentMeta(paths[0])
	return true, paths[0], scale, autoencoder, err
}
