package autoenc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/trainer"
)

// LatentSource is the autoencoder a latent file was written with (metadata data.MetaAutoencoder,
// written by `fewstep data encode`).
type LatentSource struct {
	Run              string                   `json:"run"`
	Step             int                      `json:"step"`
	CheckpointSHA256 string                   `json:"checkpoint_sha256"`
	Autoencoder      models.AutoencoderConfig `json:"autoencoder"`
	ImageSize        int                      `json:"image_size"`
	Channels         int                      `json:"channels"`
}

// ParseSource reads data.MetaAutoencoder's JSON; file names the latent file for errors.
func ParseSource(file, meta string) (LatentSource, error) {
	var id LatentSource
	if meta == "" {
		return id, fmt.Errorf("%s: no fewstep.autoencoder metadata: it was not written by `fewstep data encode`", file)
	}
	if err := json.Unmarshal([]byte(meta), &id); err != nil {
		return id, fmt.Errorf("%s: metadata fewstep.autoencoder: %w", file, err)
	}
	if id.Run == "" || id.CheckpointSHA256 == "" || id.ImageSize <= 0 || id.Channels <= 0 {
		return id, fmt.Errorf("%s: metadata fewstep.autoencoder lacks run, checkpoint_sha256, image_size or channels: %s", file, meta)
	}
	return id, id.Autoencoder.Validate()
}

// Decoder maps latents (scaled as the loader gives them) back to images with the EMA weights of
// the autoencoder checkpoint a latent file names.
type Decoder struct {
	ID    LatentSource
	Scale float64
	exec  *model.Exec
}

// LoadDecoder loads the decoder of id's checkpoint after checking that its SHA-256 is the one the
// latent file recorded (an error names the checkpoint and both hashes otherwise).
func LoadDecoder(backend compute.Backend, id LatentSource, scale float64) (*Decoder, error) {
	ckpt := checkpoints.RunDir(id.Run).CheckpointPath(int64(id.Step))
	got, err := FileSHA256(ckpt)
	if err != nil {
		return nil, fmt.Errorf("autoencoder of the latent data: %w", err)
	}
	if got != id.CheckpointSHA256 {
		return nil, fmt.Errorf("autoencoder of the latent data: %s has SHA-256 %s, the latent file was encoded with %s (retrained or replaced? re-encode the data)", ckpt, got, id.CheckpointSHA256)
	}
	store := model.NewStore()
	if _, err := trainer.InitWeights(store, ckpt, true, func(p string) bool { return strings.HasPrefix(p, DecoderScope+"/") }); err != nil {
		return nil, err
	}
	ae, err := models.NewAutoencoder(id.Autoencoder, 0)
	if err != nil {
		return nil, err
	}
	ae.Frozen = true
	d := &Decoder{ID: id, Scale: scale}
	d.exec, err = model.NewExec(backend, store, func(root *model.Scope, z *Node) *Node {
		return ae.Decode(root.In(trainer.ModelScope).In(DecoderScope), DivScalar(z, scale), id.Channels)
	})
	return d, err
}

// Decode maps n scaled latents [n, h, w, z_c] (flattened) to images [n, H, W, C] in about [−1, 1].
func (d *Decoder) Decode(latents []float32, n int) ([]float32, error) {
	f := d.ID.Autoencoder.Factor()
	side := d.ID.ImageSize / f
	zc := d.ID.Autoencoder.LatentChannels
	if len(latents) != n*side*side*zc {
		return nil, fmt.Errorf("decode: %d values for %d latents of %d×%d×%d", len(latents), n, side, side, zc)
	}
	out, err := d.exec.Call1(tensors.FromFlatDataAndDimensions(latents, n, side, side, zc))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return tensors.MustCopyFlatData[float32](out), nil
}

// ImageShape is the decoded images' shape (trainer.LatentDecoder).
func (d *Decoder) ImageShape() (h, w, c int) { return d.ID.ImageSize, d.ID.ImageSize, d.ID.Channels }

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
