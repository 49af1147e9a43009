// Package data owns fewstep's on-disk dataset format and the host-side input pipeline:
// the Parquet image schema, importers that write it (MNIST from the GoMNIST idx files),
// Load, which streams a Parquet split into memory, and Loader, which yields shuffled,
// resumable mini-batches for the train loop.
//
// # Parquet schema (schema version 1)
//
// One row per image; columns (all required, i.e. non-null):
//
//	image   binary  PNG bytes (grayscale, RGB or RGBA; any size up to Config.ImageSize)
//	label   int32   class index in [0, num_classes)
//	caption string  class name, e.g. "seven"
//	width   int32   image width in pixels
//	height  int32   image height in pixels
//
// File key-value metadata: "fewstep.schema_version" = "1" and "fewstep.class_names" =
// JSON array of class names indexed by label. The image column is written without
// dictionary encoding; all columns are zstd-compressed.
//
// # Shapes
//
// Dataset.Pixels is uint8 [N, H, W, C] row-major (channels-last) after centering each
// image on a black (0) canvas of side Config.ImageSize. Loader.Next fills a float32
// batch x: [B, H, W, C] with pixel/127.5 - 1 in [-1, 1] and labels: [B].
//
// # Reproducibility
//
// The example order of epoch e is a Fisher–Yates permutation driven by a PCG-DXSM stream
// seeded with (seed, e), implemented here so that it does not depend on the Go release.
// A Loader's Position (epoch, index) is therefore all a checkpoint needs to resume the
// exact batch stream.
package data
