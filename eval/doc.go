// Package eval answers "how close is a few-step student to its teacher, and how much faster":
// it trains (and caches) a small classifier per dataset as the feature network, and measures
// FID (Heusel et al., arXiv 1706.08500) on its semantic and texture features (calibrated against
// known defects by Calibrate: `fewstep eval calibrate`), class accuracy of
// conditional samples, k-NN precision/recall (Kynkäänniemi et al., arXiv 1904.06991, k=3) and
// generation speed, for every (run, step count) setting, in one table. Its class probabilities
// (Probabilities, ClassConfidence, ClassMargin) also score real images for data curation.
//
// The FID here uses fewstep's own small classifier, not Inception-v3: its numbers are comparable
// between fewstep runs on the same dataset and classifier, not with FIDs published in papers.
package eval
