package data

// Schema version 2 of fewstep's Parquet datasets (see doc.go). Version 1 files (MNIST imports of
// part 1: image, label, caption, width, height) are a subset and stay readable.
const (
	// ColImage holds encoded image bytes (PNG or JPEG); a row has an image or a latent.
	ColImage = "image"
	// ColLatent holds cached autoencoder latents, list<float32>, shaped by ColLatentShape.
	ColLatent = "latent"
	// ColLatentShape is the latent's shape, list<int32> (e.g. [4, 8, 8]).
	ColLatentShape = "latent_shape"
	// ColLabel is the class index, int32, optional (nullable).
	ColLabel = "label"
	// ColCaption is the caption text, string, optional.
	ColCaption = "caption"
	// ColTextEmbedding is a precomputed text-encoder embedding, list<float32>, optional.
	ColTextEmbedding = "text_embedding"
	// ColNoise is the initial noise x_T of a noise–image pair (SDXS, arXiv 2403.16627:
	// a teacher's ODE solve maps x_T to the row's image; the student learns x_T → image),
	// list<float32>, optional: H·W·C values in the image's channels-last [H, W, C] order,
	// H = W = data.image_size (the model input, after centering on the canvas).
	ColNoise = "noise"
	// ColScore is a quality/aesthetic score, float32, optional.
	ColScore = "score"
	// ColID is a stable example identifier, string, optional.
	ColID = "id"
	// ColWidth and ColHeight are the encoded image's size in pixels, int32.
	ColWidth  = "width"
	ColHeight = "height"

	// MetaSchemaVersion is the file key-value metadata key of the schema version ("1" or "2").
	MetaSchemaVersion = "fewstep.schema_version"
	// MetaClassNames is a JSON array of class names indexed by label.
	MetaClassNames = "fewstep.class_names"
	// MetaVocab is a JSON array of caption tokens: the vocabulary built at import time
	// (index 0 = padding, 1 = unknown); see Tokenize.
	MetaVocab = "fewstep.vocab"
	// SchemaVersion is the version written by this release.
	SchemaVersion = "2"
)

// Row is one example as importers produce it and writers store it. Optional fields are stored
// as nulls when their Has* flag is false (or, for slices and strings, when empty).
type Row struct {
	Image         []byte    // encoded PNG/JPEG (nil for latent rows)
	Latent        []float32 // cached latent values (nil for image rows)
	LatentShape   []int32   // shape of Latent
	Label         int32
	HasLabel      bool
	Caption       string
	TextEmbedding []float32
	Noise         []float32 // x_T of a noise–image pair, [H, W, C] flattened (nil: null)
	Score         float32
	HasScore      bool
	ID            string
	Width, Height int32
}
