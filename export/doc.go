// Package export owns the fewstep-model/1 file: the inference weights of one trained denoiser in a
// plain safetensors file whose __metadata__ carries everything needed to sample from it, so that
// `fewstep sample -model`, `fewstep eval -model`, trainer.init_from, distill.teacher and the Go API
// (package generate) need nothing else.
//
// # Layering
//
// Layer 1: export imports checkpoints (the safetensors reader and writer), models (the configs,
// and the network that defines which tensors a config needs) and data (the data section), all of
// layer 0, and is imported by trainer (init_from), distill (teacher files), configs (assembling an
// export from a run), generate and cmd. It is not part of checkpoints because checkpoints sits
// beside models on layer 0 and so cannot build the network to check a file's tensor names and
// shapes against its model config. It does not import sampling (same layer): the sample section
// travels as JSON with sampling.Config's key names, typed here only for the recommended sampler,
// steps, guidance scale and spacing, and decoded whole by sampling-aware readers
// (Sampling.Decode, used by package generate).
//
// # File
//
// A safetensors file written by checkpoints.WriteSafetensors: an 8-byte little-endian header
// length N, N bytes of UTF-8 JSON header beginning with '{' and padded with spaces so that the
// data section starts 8-byte aligned, then the tensors' little-endian bytes, contiguous in name
// order. It holds exactly the denoiser's variables, all F32, named by their path inside the
// network without any scope prefix ("embed/class/table", "down0/res0/conv1/kernel",
// "out/conv/bias"; Expected lists them for a config). Layouts: conv kernels [k, k, Cin, Cout],
// dense weights [in, out], GroupNorm gain and bias [C], the class table [num_classes+1, embed_dim]
// (the last row is the null class of guidance). Training state is left out: optimizer
// moments (/opt), the teacher of a distilled run (/teacher), discriminator heads (/disc) and the
// other copy of the weights (the raw /model weights when exporting the EMA, the default).
//
// # Metadata
//
// Every value is a string (the safetensors rule); JSON values use the YAML key names of the run
// config sections:
//
//	fewstep.export_format  "fewstep-model/1" (Format)
//	fewstep.model          JSON of models.Config, the model: section
//	fewstep.diffusion      JSON of models.DiffusionConfig: noise schedule, parameterization, t_max
//	fewstep.data           JSON of data.Config: image_size, channels, num_classes, and the
//	                       train/test Parquet files the run used (eval's classifier and test split)
//	fewstep.sample         JSON of the sample: section: the recommended sampler, steps, cfg,
//	                       spacing (a schedule file is inlined as spacing "list" with timesteps)
//	fewstep.class_names    JSON list of class names, index = label (absent when unknown)
//	fewstep.distilled      "true" for a few-step student (its checkpoint held /teacher weights)
//	fewstep.student_times  JSON list of the student's timesteps (distilled models only)
//	fewstep.source_run     the run directory exported
//	fewstep.source_step    the checkpoint step exported
//	fewstep.weights        "ema" (the default) or "model" (the raw weights, fewstep export -raw)
//	fewstep.version        the fewstep version that wrote the file (see Version)
//	fewstep.crc32c         CRC-32C of the data section (added by checkpoints)
//
// The model and diffusion sections must hold every key (they define the network and its
// schedule); data keys a file lacks take data.DefaultConfig's values; sample keys it lacks take
// the reader's defaults (Sampling.Decode).
//
// ReadModel rejects a file with a structural defect (checkpoints.ReadSafetensors), a missing or
// unknown export format, missing, malformed or unknown fewstep.* keys, invalid configs, and any
// missing, extra or wrongly shaped tensor; nothing is returned half-loaded.
package export
