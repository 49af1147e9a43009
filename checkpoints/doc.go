// Package checkpoints owns the run-directory layout and the atomic save and
// restore of all training state in the safetensors format.
//
// # Run directory
//
// A run lives in one directory (see RunDir):
//
//	RUN/config.yaml                                resolved config
//	RUN/metrics.jsonl                              one JSON object per logged step
//	RUN/checkpoints/ckpt-000001000.safetensors     checkpoints, 9-digit zero-padded step
//	RUN/samples/step-000001000.png                 sample grids
//	RUN/samples/final.png
//
// # File format
//
// Checkpoints are plain safetensors files (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of UTF-8 JSON header beginning
// with '{' and padded with spaces (0x20, as the format allows) so that the data
// section starts 8-byte aligned, then the raw little-endian tensor data, tensors
// laid out contiguously in name order (each tensor's offset is a multiple of its
// element size only when earlier tensors keep it so, e.g. all-F32 files).
// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL.
//
// Exported models (package export, format fewstep-model/1) are files of the same writer.
//
// The writer adds the metadata key "fewstep.crc32c" (hex CRC-32C, Castagnoli,
// of the whole data section); the reader verifies it when present, so files
// written by other tools (without it) still load. Save also records
// "fewstep.step", which LoadStep/LoadLatest check against the file name.
//
// # Crash safety
//
// Every file is written to a temporary file in the same directory
// ("."+base+".tmp-*"), fsynced, renamed over the final name, and the directory
// is fsynced. A crash therefore leaves either the old state or the new one,
// plus at most a stray temporary file, which the next Save removes. Unlike
// GoMLX's ml/model/checkpoint, there is no separate "latest" pointer that can
// be torn: the newest valid ckpt-*.safetensors file is the latest checkpoint.
// A corrupt newest checkpoint is reported, never silently skipped.
//
// The package assumes one writer per run directory.
package checkpoints
