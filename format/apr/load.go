package apr

import (
	"fmt"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tokenizer"
)

// Load opens an APR file as a model: config, tokenizer and chat template
// from its metadata, tensors mapped from the file.
func Load(path string, opts Options) (*model.Model, error) {
	f, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	m, err := f.Model()
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// Model builds the model of an open file; closing the model closes f.
func (f *File) Model() (*model.Model, error) {
	cfg, err := f.Meta.ModelConfig()
	if err != nil {
		return nil, fmt.Errorf("apr: %s: %w", f.path, err)
	}
	spec, err := f.Meta.TokenizerSpec()
	if err != nil {
		return nil, fmt.Errorf("apr: %s: %w", f.path, err)
	}
	tok, err := tokenizer.New(spec)
	if err != nil {
		return nil, fmt.Errorf("apr: %s: %w", f.path, err)
	}
	tmpl, err := chat.FromSource(f.Meta.ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("apr: %s: chat template: %w", f.path, err)
	}
	m, err := model.New(f.path, "apr", cfg, f.Tensors(), tok, tmpl, f.Meta.ModelGeneration(), f)
	if err != nil {
		return nil, err
	}
	if o := f.Meta.Provenance.Origin; o != "" {
		m.Origin = o
	}
	return m, nil
}
