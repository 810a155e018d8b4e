// Package model holds what a loaded model is, independent of its file format:
// the hyperparameters (Config), canonical tensor names, and the Model that ties
// weights, tokenizer and chat template together.
package model

import (
	"encoding/json"
	"fmt"
)

// Arch names a supported architecture family.
type Arch string

// Supported architectures. They share one forward pass and differ in biases.
const (
	ArchQwen2 Arch = "qwen2"
	ArchLlama Arch = "llama"
)

// Config is the set of hyperparameters the forward pass needs.
type Config struct {
	Arch              Arch
	HiddenSize        int
	IntermediateSize  int
	NumLayers         int
	NumHeads          int
	NumKVHeads        int
	HeadDim           int
	VocabSize         int
	MaxPositions      int // context length
	RopeTheta         float64
	RMSNormEps        float64
	TieWordEmbeddings bool
	AttentionBias     bool // Q/K/V projections carry biases (Qwen2)
	BOSTokenID        int  // -1 when none
	EOSTokenIDs       []int
}

// Validate checks internal consistency: positive and plausible sizes (so
// that products of them fit an int), heads dividing evenly, a context
// length that is not negative (0: not known), and BOS/EOS ids inside the
// vocabulary.
func (c *Config) Validate() error {
	switch {
	case c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumLayers <= 0 || c.VocabSize <= 0:
		return fmt.Errorf("config: sizes must be positive (hidden %d, intermediate %d, layers %d, vocab %d)",
			c.HiddenSize, c.IntermediateSize, c.NumLayers, c.VocabSize)
	case c.NumHeads <= 0 || c.NumKVHeads <= 0:
		return fmt.Errorf("config: head counts must be positive (heads %d, kv heads %d)", c.NumHeads, c.NumKVHeads)
	case c.NumHeads%c.NumKVHeads != 0:
		return fmt.Errorf("config: %d attention heads is not a multiple of %d kv heads", c.NumHeads, c.NumKVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("config: head dim %d must be positive and even", c.HeadDim)
	case c.RopeTheta <= 0:
		return fmt.Errorf("config: rope theta %g must be positive", c.RopeTheta)
	case c.RMSNormEps <= 0:
		return fmt.Errorf("config: rms norm eps %g must be positive", c.RMSNormEps)
	case c.NumLayers > 1<<12 || c.HiddenSize > 1<<20 || c.NumHeads > 1<<12 || c.HeadDim > 1<<12 ||
		c.IntermediateSize > 1<<22 || c.VocabSize > 1<<23:
		return fmt.Errorf("config: implausible sizes (layers %d, hidden %d, heads %d, head dim %d, intermediate %d, vocab %d)",
			c.NumLayers, c.HiddenSize, c.NumHeads, c.HeadDim, c.IntermediateSize, c.VocabSize)
	case c.MaxPositions < 0 || c.MaxPositions > 1<<26: // 0: not known
		return fmt.Errorf("config: context length %d is negative or past %d", c.MaxPositions, 1<<26)
	case c.BOSTokenID < -1 || c.BOSTokenID >= c.VocabSize:
		return fmt.Errorf("config: BOS token id %d is outside the vocabulary of %d", c.BOSTokenID, c.VocabSize)
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 || id >= c.VocabSize {
			return fmt.Errorf("config: EOS token id %d is outside the vocabulary of %d", id, c.VocabSize)
		}
	}
	return nil
}

// Dims returns the activation widths of one token: hidden, all query
// heads, all key/value heads, and the MLP's intermediate size.
func (c *Config) Dims() (h, qDim, kvDim, ffn int) {
	return c.HiddenSize, c.NumHeads * c.HeadDim, c.NumKVHeads * c.HeadDim, c.IntermediateSize
}

// hfConfig is the subset of a Hugging Face config.json apr reads.
type hfConfig struct {
	Architectures     []string        `json:"architectures"`
	ModelType         string          `json:"model_type"`
	HiddenSize        int             `json:"hidden_size"`
	IntermediateSize  int             `json:"intermediate_size"`
	NumLayers         int             `json:"num_hidden_layers"`
	NumHeads          int             `json:"num_attention_heads"`
	NumKVHeads        int             `json:"num_key_value_heads"`
	HeadDim           int             `json:"head_dim"`
	VocabSize         int             `json:"vocab_size"`
	MaxPositions      int             `json:"max_position_embeddings"`
	RopeTheta         float64         `json:"rope_theta"`
	RopeParameters    *ropeParameters `json:"rope_parameters"`
	RMSNormEps        float64         `json:"rms_norm_eps"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
	AttentionBias     *bool           `json:"attention_bias"`
	BOSTokenID        *int            `json:"bos_token_id"`
	EOSTokenID        json.RawMessage `json:"eos_token_id"`
}

type ropeParameters struct {
	RopeTheta float64 `json:"rope_theta"`
	RopeType  string  `json:"rope_type"`
}

// ParseHFConfig reads a Hugging Face config.json. Tied embeddings default to
// the file's tie_word_embeddings; the loader also treats a missing
// lm_head.weight as tied.
func ParseHFConfig(data []byte) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	c := &Config{
		HiddenSize:       h.HiddenSize,
		IntermediateSize: h.IntermediateSize,
		NumLayers:        h.NumLayers,
		NumHeads:         h.NumHeads,
		NumKVHeads:       h.NumKVHeads,
		HeadDim:          h.HeadDim,
		VocabSize:        h.VocabSize,
		MaxPositions:     h.MaxPositions,
		RopeTheta:        h.RopeTheta,
		RMSNormEps:       h.RMSNormEps,
		BOSTokenID:       -1,
	}
	switch h.ModelType {
	case "qwen2":
		c.Arch = ArchQwen2
		c.AttentionBias = true
	case "llama", "mistral":
		c.Arch = ArchLlama
	default:
		return nil, fmt.Errorf("config.json: unsupported model_type %q (apr runs qwen2 and llama)", h.ModelType)
	}
	if h.AttentionBias != nil {
		c.AttentionBias = *h.AttentionBias
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if c.HeadDim == 0 && c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if h.RopeParameters != nil && h.RopeParameters.RopeTheta > 0 {
		if t := h.RopeParameters.RopeType; t != "" && t != "default" {
			return nil, fmt.Errorf("config.json: rope_type %q is not supported", t)
		}
		c.RopeTheta = h.RopeParameters.RopeTheta
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = 32768
	}
	if h.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *h.TieWordEmbeddings
	}
	if h.BOSTokenID != nil {
		c.BOSTokenID = *h.BOSTokenID
	}
	ids, err := ParseTokenIDs(h.EOSTokenID)
	if err != nil {
		return nil, fmt.Errorf("config.json: eos_token_id: %w", err)
	}
	c.EOSTokenIDs = ids
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

// ParseTokenIDs reads a JSON value that is null, one integer or a list of
// integers (as eos_token_id is in Hugging Face files).
func ParseTokenIDs(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want an integer or a list of integers: %w", err)
	}
	return many, nil
}
