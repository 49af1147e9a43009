package configs

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/data"
	"github.com/fewstep/fewstep/distill"
	"github.com/fewstep/fewstep/models"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// RunSection is the `run:` section.
type RunSection struct {
	// Name is the run's directory name under OutDir.
	Name string `mapstructure:"name"`
	// OutDir is the parent directory of run directories.
	OutDir string `mapstructure:"out_dir"`
	// Seed seeds weight initialization, data order and the training noise.
	Seed int `mapstructure:"seed"`
}

// Run is a whole run config. Sections appear in this order in resolved YAML.
type Run struct {
	Run       RunSection             `mapstructure:"run"`
	Data      data.Config            `mapstructure:"data"`
	Model     models.Config          `mapstructure:"model"`
	Diffusion models.DiffusionConfig `mapstructure:"diffusion"`
	Trainer   trainer.Config         `mapstructure:"trainer"`
	Sample    sampling.Config        `mapstructure:"sample"`
	Distill   distill.Config         `mapstructure:"distill"`
	LADD      distill.LADDConfig     `mapstructure:"ladd"`
	// ImagineFlash is the imagine_flash: section (method imagine_flash).
	ImagineFlash distill.IFConfig `mapstructure:"imagine_flash"`
	// SDXS is the sdxs: section (method sdxs).
	SDXS distill.SDXSConfig `mapstructure:"sdxs"`
	// Finetune is the finetune: section (`fewstep finetune`).
	Finetune distill.FinetuneConfig `mapstructure:"finetune"`
	// Autoencoder is the autoencoder: section (model.arch autoencoder, part 15).
	Autoencoder models.AutoencoderConfig `mapstructure:"autoencoder"`
	// TinyDecoder is the tiny_decoder: section (model.arch tiny_decoder: SDXS's decoder, part 15).
	TinyDecoder models.TinyDecoderConfig `mapstructure:"tiny_decoder"`
	// LCM is the lcm: section (distill.method lcm, part 16).
	LCM distill.LCMConfig `mapstructure:"lcm"`
	// PeRFlow is the perflow: section (distill.method perflow, part 16).
	PeRFlow distill.PeRFlowConfig `mapstructure:"perflow"`
	// LoRA is the lora: section: low-rank adapters on the denoiser (part 16); Job copies it into
	// the model config.
	LoRA models.LoRAConfig `mapstructure:"lora"`
}

// Default returns the defaults: each section's DefaultConfig, the only place defaults live.
func Default() Run {
	return Run{
		Run:          RunSection{Name: "mnist-teacher", OutDir: "runs", Seed: 0},
		Data:         data.DefaultConfig(),
		Model:        models.DefaultConfig(),
		Diffusion:    models.DefaultDiffusionConfig(),
		Trainer:      trainer.DefaultConfig(),
		Sample:       sampling.DefaultConfig(),
		Distill:      distill.DefaultConfig(),
		LADD:         distill.DefaultLADDConfig(),
		ImagineFlash: distill.DefaultIFConfig(),
		SDXS:         distill.DefaultSDXSConfig(),
		Finetune:     distill.DefaultFinetuneConfig(),
		Autoencoder:  models.DefaultAutoencoderConfig(),
		TinyDecoder:  models.DefaultTinyDecoderConfig(),
		LoRA:         models.DefaultLoRAConfig(),
		LCM:          distill.DefaultLCMConfig(),
		PeRFlow:      distill.DefaultPeRFlowConfig(),
	}
}

// Validate validates every section and the keys that must agree across sections.
func (r Run) Validate() error {
	if r.Run.Name == "" || filepath.Base(r.Run.Name) != r.Run.Name {
		return fmt.Errorf("run.name: must be a plain directory name, got %q", r.Run.Name)
	}
	if r.Run.OutDir == "" {
		return fmt.Errorf("run.out_dir: must not be empty")
	}
	if r.Run.Seed < 0 {
		return fmt.Errorf("run.seed: must be >= 0, got %d", r.Run.Seed)
	}
	for _, v := range []interface{ Validate() error }{r.Data, r.Model, r.Diffusion, r.Trainer, r.Sample, r.Distill, r.ImagineFlash, r.Finetune, r.Autoencoder, r.TinyDecoder, r.LoRA, r.LCM, r.PeRFlow} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if err := r.LADD.Validate(nil); err != nil { // taps are checked against the teacher by distill
		return err
	}
	if err := r.SDXS.Validate(nil); err != nil {
		return err
	}
	if r.Model.NumClasses != r.Data.NumClasses {
		return fmt.Errorf("model.num_classes: %d disagrees with data.num_classes %d", r.Model.NumClasses, r.Data.NumClasses)
	}
	return r.Model.CheckInput(r.Data.ImageSize)
}

// resolveText checks that model.text and data.condition agree and fills model.text.vocab and
// class_names from the training files' metadata when the vocabulary is empty and the files can be
// read (so the resolved config carries the vocabulary); without data it leaves them empty, and the
// trainer refuses to start.
func (r *Run) resolveText() error {
	tc := r.Model.Text
	if !tc.On() {
		if r.Data.Condition == data.ConditionCaption {
			return fmt.Errorf("data.condition: caption needs a model that reads captions: set model.text.source: learned")
		}
		return nil
	}
	if tc.Column() {
		return r.resolveEmbeddings()
	}
	if r.Data.Condition != data.ConditionCaption {
		return fmt.Errorf("model.text.source: learned reads captions, but data.condition is %q: set data.condition: caption", r.Data.Condition)
	}
	if r.Data.MaxTokens != tc.MaxTokens {
		return fmt.Errorf("data.max_tokens: %d disagrees with model.text.max_tokens %d", r.Data.MaxTokens, tc.MaxTokens)
	}
	if len(tc.Vocab) > 0 || tc.VocabSizeOverride > 0 { // vocab_size alone: a bare token table (benchmarks)
		return nil
	}
	vocab, names, err := data.ReadTextMeta(r.Data.Train)
	if err != nil {
		return nil // no data yet (a preset listed or dry-run): training refuses an empty vocabulary
	}
	r.Model.Text.Vocab, r.Model.Text.ClassNames = vocab, names
	return nil
}

// resolveEmbeddings fills model.text.embedding_dim (from the first non-empty text_embedding of
// data.train), model.text.prompt_file (data.train) and the class names of a model conditioned on
// precomputed embeddings (model.text.source column).
func (r *Run) resolveEmbeddings() error {
	tc := &r.Model.Text
	if r.Data.Condition != data.ConditionTextEmbedding {
		return fmt.Errorf("model.text.source: column reads precomputed embeddings, but data.condition is %q: set data.condition: text_embedding", r.Data.Condition)
	}
	if tc.PromptFile == "" {
		tc.PromptFile = r.Data.Train
	}
	if tc.ClassNames == nil {
		_, tc.ClassNames, _ = data.ReadTextMeta(r.Data.Train)
	}
	if tc.EmbeddingDim > 0 {
		return nil
	}
	dim, err := data.ReadEmbeddingDim(r.Data.Train)
	if err != nil {
		return nil // no data yet (a preset listed or dry-run): training refuses embedding_dim 0
	}
	if dim%tc.EmbeddingTokens != 0 {
		return fmt.Errorf("model.text.embedding_tokens: %d does not divide the %d values of %s's text_embedding", tc.EmbeddingTokens, dim, r.Data.Train)
	}
	tc.EmbeddingDim = dim
	return nil
}

// Dir is the run directory: out_dir/name.
func (r Run) Dir() checkpoints.RunDir {
	return checkpoints.RunDir(filepath.Join(r.Run.OutDir, r.Run.Name))
}

// Job assembles the trainer's job from the config and its resolved YAML.
func (r Run) Job(resolved []byte) trainer.Job {
	return trainer.Job{RunDir: r.Dir(), Seed: uint64(r.Run.Seed), Data: r.Data, Model: r.ModelWithLoRA(),
		Diffusion: r.Diffusion, Trainer: r.Trainer, Sample: r.Sample, ConfigYAML: resolved, StudentTimes: r.StudentTimes()}
}

// ModelWithLoRA is the model section with the lora: section in it (models.Config.LoRA): the
// network a run of this config trains and samples.
func (r Run) ModelWithLoRA() models.Config {
	m := r.Model
	if r.LoRA.On() {
		l := r.LoRA
		m.LoRA = &l
	}
	return m
}

// StudentTimes are the K times a distilled student of this config trains at (distill.student_times,
// or its trailing times): the sample.spacing "student".
func (r Run) StudentTimes() []float64 { return r.Distill.Times(r.Diffusion.TMax) }

// YAML renders the resolved config with the section order of Run and the YAML key names.
func (r Run) YAML() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# fewstep resolved run config\n")
	sections := []struct {
		name string
		v    any
	}{{"run", r.Run}, {"data", r.Data}, {"model", r.Model}, {"diffusion", r.Diffusion}, {"trainer", r.Trainer}, {"sample", r.Sample}, {"distill", r.Distill}, {"ladd", r.LADD}, {"imagine_flash", r.ImagineFlash}, {"sdxs", r.SDXS}, {"finetune", r.Finetune}, {"autoencoder", r.Autoencoder}, {"tiny_decoder", r.TinyDecoder}, {"lora", r.LoRA}, {"lcm", r.LCM}, {"perflow", r.PeRFlow}}
	for _, s := range sections {
		m := map[string]any{}
		if err := mapstructure.Decode(s.v, &m); err != nil {
			return nil, err
		}
		out, err := yaml.Marshal(map[string]any{s.name: m})
		if err != nil {
			return nil, err
		}
		buf.Write(out)
	}
	return buf.Bytes(), nil
}
