// Package hf loads Hugging Face model folders: config.json,
// generation_config.json, SafeTensors weights (one file or sharded), the
// tokenizer and the chat template.
package hf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/format/safetensors"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tokenizer"
)

// IsModelDir reports whether dir looks like a Hugging Face model folder.
func IsModelDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "config.json"))
	return err == nil && st.Mode().IsRegular()
}

// Load opens the model folder dir, its weights mapped lazily.
func Load(dir string) (*model.Model, error) { return LoadWith(dir, safetensors.Options{}) }

// LoadWith opens the model folder dir, mapping its weights as opts say
// (Populate for a caller about to compute with them).
func LoadWith(dir string, opts safetensors.Options) (*model.Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	cfg, err := model.ParseHFConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	var gen model.Generation
	raw, err = os.ReadFile(filepath.Join(dir, "generation_config.json"))
	switch {
	case err == nil:
		g, err := model.ParseGenerationConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		gen = *g
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", dir, err)
	}
	tmpl, err := chat.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: chat template: %w", dir, err)
	}
	set, err := safetensors.OpenDirWith(dir, opts)
	if err != nil {
		return nil, err
	}
	m, err := model.New(dir, "safetensors", cfg, set.Tensors(), tok, tmpl, gen, set)
	if err != nil {
		set.Close()
		return nil, err
	}
	return m, nil
}
