// Package data owns fewstep's on-disk dataset format and the host-side input pipeline:
// the Parquet image schema (schema.go), the importers and the writer that produce it, and
// the reader: Open returns a Stream that yields shuffled, filtered, augmented, resumable
// mini-batches from one or more Parquet files for the train loop. The older in-memory API
// (Load, which reads one whole file into a Dataset, and Loader, which shuffles it) remains
// for callers that have not moved to Stream.
//
// For data curation (Emu quality tuning, arXiv 2309.15807) ScoreFile rewrites a file with its
// score column set by a Scorer (score.go: Sharpness, a column copy; the classifier scorer
// lives in cmd/fewstep, on top of eval), and InspectCuration and CurationGrid preview what
// the score filters (data.top_k, data.min_score) keep, with Open's own selection code.
//
// # Parquet schema
//
// One row per example; see the Col* constants of schema.go. The reader uses:
//
//	image          binary         PNG or JPEG bytes (gray, RGB or RGBA; at most image_size a side)
//	label          int32          class index (needed by condition "label", data.labels, per-class top-K)
//	caption        string         caption text (condition "caption", data.caption_contains)
//	score          float32        quality score (data.min_score, data.top_k)
//	text_embedding list<float32>  precomputed text embedding (condition "text_embedding")
//	noise          list<float32>  initial noise x_T of a noise–image pair, [H, W, C] (data.noise)
//	width, height  int32          optional; checked against data.image_size at Open
//
// File key-value metadata: "fewstep.schema_version" ("1" or "2"; absent means "1"),
// "fewstep.class_names" (JSON array indexed by label) and "fewstep.vocab" (JSON array of
// caption tokens, index = token id; 0 padding, 1 unknown). Files of one stream must agree
// on class names and vocabulary.
//
// # Shapes
//
// Stream.Next fills a Batch: X float32 [B, H, W, C] (channels-last, H = W = image_size)
// with pixel/127.5 - 1 in [-1, 1], images centered on a black canvas (MNIST 28 → 32);
// Labels int32 [B]; Tokens int32 [B, max_tokens] under condition "caption"; TextEmbedding
// float32 [B, D] under condition "text_embedding"; Noise float32 [B, H, W, C] under
// data.noise, the x_T whose teacher ODE solve is the example's image (SDXS noise–image
// pairs, arXiv 2403.16627; hflip and cropping must be off so that the pairs hold). The v1
// Dataset.Pixels is uint8 [N, H, W, C] and Loader.Next fills x [B, H, W, C] and labels [B].
//
// # Order and reproducibility
//
// Open reads only footers and the small columns, applies the filters (label subset,
// caption substring, score >= min_score, then top-K by score, overall or per class) and
// numbers the kept rows 0…N-1 in layout order (file, row group, row). The order of epoch e
// is a pure function of (seed, e, layout): the (file, row group) units are permuted by a
// Fisher–Yates shuffle on a PCG-DXSM stream seeded (seed, key(e)), their kept rows
// concatenated, and that stream run through a simulated shuffle buffer of shuffle_buffer
// rows on a second PCG stream — on row ids only, without reading a row. Augmentation
// (horizontal flip, random square crop of at least crop_scale of the area resized back) of
// the row at order position (e, i) draws from PCG(seed, key(e, i)). The bounded integers
// are Lemire's, implemented here, so orders do not depend on the Go release
// (TestEpochOrderGolden pins them).
//
// Rows are decoded by data.workers goroutines and put into batches, strictly in order, by
// one assembler, data.prefetch batches ahead. A row whose image does not decode (or whose
// text_embedding or, under data.noise, noise is null or of the wrong length) is skipped —
// its order position is consumed, the next row takes its place — counted in Stats.Skipped
// and reported with file, row and column in Stats.BadRows; with bad_rows "fail" Next
// returns an error naming them. So the batches are a pure function of (files, config, seed,
// position): workers and timing change nothing.
//
// Position {"epoch":E,"index":I,"fingerprint":F} is the number of order positions consumed
// (skips included) in epoch E, plus a hash of the file names, row-group sizes, kept rows,
// filters, shuffle buffer and seed. A checkpoint stores it; SetPosition on a stream opened
// with the same data and config resumes exactly where the run stopped, and refuses a
// position whose fingerprint differs.
//
// Memory: each (file, row group) unit is read (image column, with projection; with
// text_embedding and noise when they are used) when its first row comes up in the order and
// dropped after its last; in between its encoded bytes (and float lists) are held. With a
// shuffle buffer of S rows that spans a few times S rows of units (with small files or S
// near N, the whole dataset's encoded bytes); decoded images exist only for the rows in
// flight and the prefetched batches.
package data
