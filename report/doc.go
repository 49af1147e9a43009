// Package report writes the HTML run report (part 17): one self-contained page per run directory
// (inline SVG plots, images as data URIs, no network) with every logged metric over steps, the
// sample grids over training, the eval tables and comparison image, and the resolved config; for
// several runs their curves overlaid. It reads run directories only; cmd/fewstep is its one
// importer (`fewstep report`, and the refresh after each training grid).
package report
