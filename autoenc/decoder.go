package autoenc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// DecoderWeights reads the decoder's EMA weights (keyed by path inside the decoder,
// "conv_out/kernel") from the checkpoint id names, after checking that its SHA-256 is the one the
// latent file recorded (an error names the checkpoint and both hashes otherwise).
func DecoderWeights(id models.LatentSource) (map[string]*tensors.Tensor, error) {
	ckpt := checkpoints.RunDir(id.Run).CheckpointPath(int64(id.Step))
	got, err := FileSHA256(ckpt)
	if err != nil {
		return nil, fmt.Errorf("autoencoder of the latent data: %w", err)
	}
	if got != id.CheckpointSHA256 {
		return nil, fmt.Errorf("autoencoder of the latent data: %s has SHA-256 %s, the latent file was encoded with %s (retrained or replaced? re-encode the data)", ckpt, got, id.CheckpointSHA256)
	}
	ts, _, err := checkpoints.ReadSafetensors(ckpt)
	if err != nil {
		return nil, err
	}
	out := map[string]*tensors.Tensor{}
	for name, t := range ts {
		if rest, ok := strings.CutPrefix(name, trainer.EMAScope+"/"+DecoderScope+"/"); ok {
			out[rest] = t
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("autoencoder of the latent data: %s has no %s/%s/* weights", ckpt, trainer.EMAScope, DecoderScope)
	}
	return out, nil
}

// LoadDecoder is the decoder of id's checkpoint (DecoderWeights) on backend.
func LoadDecoder(backend compute.Backend, id models.LatentSource, scale float64) (*sampling.Decoder, error) {
	w, err := DecoderWeights(id)
	if err != nil {
		return nil, err
	}
	return sampling.DecoderFromTensors(backend, id, nil, scale, w)
}

// FileSHA256 is the hex SHA-256 of a file (the identity of an autoencoder checkpoint).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
