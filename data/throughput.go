package data

import (
	"fmt"
	"time"
)

// Throughput measures the stream's speed in images per second, decoded, augmented and batched:
// it opens cfg, takes `warmup` batches untimed (pipeline start-up), then times `batches` batches.
func Throughput(cfg Config, batchSize, warmup, batches int, seed uint64) (float64, error) {
	if batches <= 0 {
		return 0, fmt.Errorf("data throughput: batches must be positive, got %d", batches)
	}
	s, err := Open(cfg, batchSize, seed)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	b := NewBatch(s.Info(), cfg, batchSize)
	for range warmup {
		if err := s.Next(b); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	for range batches {
		if err := s.Next(b); err != nil {
			return 0, err
		}
	}
	return float64(batches*batchSize) / time.Since(t0).Seconds(), nil
}
