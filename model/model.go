package model

import (
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/tensor"
	"github.com/apr-llm/apr/tokenizer"
)

// Model is everything a file gives apr: hyperparameters, weights under
// canonical names, the tokenizer, the chat template and generation defaults.
type Model struct {
	Path   string
	Format string // "safetensors", "gguf", "apr"
	// Origin is the format the weights were first read from ("gguf" for an
	// APR file converted from GGUF); it picks the reference numerics.
	Origin     string
	Config     *Config
	Tensors    map[string]*tensor.Tensor
	Tokenizer  *tokenizer.Tokenizer
	Template   *chat.Template
	Generation Generation
	closer     io.Closer
}

// New assembles a Model; closer (may be nil) releases the mapped files.
func New(path, format string, cfg *Config, tensors []*tensor.Tensor, tok *tokenizer.Tokenizer, tmpl *chat.Template, gen Generation, closer io.Closer) (*Model, error) {
	m := &Model{Path: path, Format: format, Config: cfg, Tensors: map[string]*tensor.Tensor{},
		Tokenizer: tok, Template: tmpl, Generation: gen, closer: closer, Origin: format}
	for _, t := range tensors {
		if _, dup := m.Tensors[t.Name]; dup {
			return nil, fmt.Errorf("%s: tensor %s appears twice", path, t.Name)
		}
		m.Tensors[t.Name] = t
	}
	if _, ok := m.Tensors[Output]; !ok {
		cfg.TieWordEmbeddings = true
	}
	if tok != nil && tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("%s: the tokenizer has %d tokens but the model's vocabulary is %d", path, tok.VocabSize(), cfg.VocabSize)
	}
	return m, nil
}

// GGMLNumerics reports whether the weights came from GGUF (directly or
// through APR), so that they run with llama.cpp's numerics (F16 KV cache,
// ggml's rotary angles) rather than transformers'.
func (m *Model) GGMLNumerics() bool { return m.Format == "gguf" || m.Origin == "gguf" }

// EOS returns the ids that end generation: the generation config's, the
// model config's and the tokenizer's, without duplicates.
func (m *Model) EOS() []int {
	var ids []int
	ids = append(ids, m.Generation.EOSTokenIDs...)
	ids = append(ids, m.Config.EOSTokenIDs...)
	if m.Tokenizer != nil {
		ids = append(ids, m.Tokenizer.EOS()...)
	}
	sort.Ints(ids)
	return slices.Compact(ids)
}

// Close releases the model's mapped files.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	return m.closer.Close()
}
