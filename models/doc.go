// Package models owns fewstep's network architectures, the one Denoiser signature, the
// parameterizations (eps, v, x0) with their conversions, and the continuous-time noise schedules.
//
// Conventions used throughout:
//   - Images are channels-last: x: [B, H, W, C], values of data in [-1, 1].
//   - Time t is continuous in [0, 1]; t=0 is data, t=1 is (almost) pure noise.
//   - A schedule gives x_t = alpha(t)·x0 + sigma(t)·eps (VP cosine/linear, or the rectified-flow
//     linear interpolant alpha=1-t, sigma=t).
//   - Conditioning is a class index cond: [B] int32 in [0, NumClasses]; NumClasses is the null
//     class used for classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance",
//     arXiv 2207.12598).
//
// Variables are created with host-side initial values drawn from a PCG generator seeded by
// (init seed, variable path), so initialization is identical on every backend and device.
package models
