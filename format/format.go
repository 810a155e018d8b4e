// Package format opens a model from any supported file format, recognising
// the format from the path's contents, never from its name.
package format

import (
	"fmt"
	"io"
	"os"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/demo"
	"github.com/apr-llm/apr/format/apr"
	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/format/hf"
	"github.com/apr-llm/apr/format/safetensors"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tokenizer"
)

// Options tune OpenWith.
type Options struct {
	// Populate reads the weight files in at open (MAP_POPULATE), for a
	// caller about to compute with the weights: an engine or GPU load. A
	// caller reading only the configuration, tokenizer or tensor list
	// leaves it off and reads little more than the metadata.
	Populate bool
}

// Kind is what a model path holds, recognised from its contents.
type Kind int

// The kinds Detect tells apart.
const (
	KindHF   Kind = iota + 1 // a folder: a Hugging Face model folder (config.json + SafeTensors)
	KindGGUF                 // a file starting with GGUF's magic
	KindAPR                  // a file starting with APR's magic
)

// Detect reports what path holds, from its contents, never from its name:
// a folder (for the Hugging Face loader to validate), a GGUF file or an
// APR file. Any other file is an error naming it and its first bytes.
func Detect(path string) (Kind, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("model %s: %w", path, err)
	}
	if st.IsDir() {
		return KindHF, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("model %s: %w", path, err)
	}
	defer f.Close()
	var b [4]byte
	n, _ := io.ReadFull(f, b[:])
	switch magic := string(b[:n]); magic {
	case gguf.Magic:
		return KindGGUF, nil
	case apr.Magic:
		return KindAPR, nil
	default:
		return 0, fmt.Errorf("model %s: unrecognised file (magic %q): want a GGUF or APR file or a Hugging Face folder", path, magic)
	}
}

// Open loads the model at path, its files mapped lazily: a Hugging Face
// folder (config.json + SafeTensors), a GGUF file, an APR file, or demo.Name
// for the built-in demo model.
func Open(path string) (*model.Model, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, opts Options) (*model.Model, error) {
	if path == demo.Name {
		f, err := gguf.OpenBytes(path, demo.GGUF)
		if err != nil {
			return nil, err
		}
		return fromGGUF(path, f)
	}
	kind, err := Detect(path)
	switch {
	case err != nil:
		return nil, err
	case kind == KindGGUF:
		return openGGUF(path, gguf.Options{Populate: opts.Populate})
	case kind == KindAPR:
		return apr.Load(path, apr.Options{Populate: opts.Populate})
	}
	if !hf.IsModelDir(path) {
		return nil, fmt.Errorf("model %s: a folder without config.json is not a Hugging Face model folder", path)
	}
	return hf.LoadWith(path, safetensors.Options{Populate: opts.Populate})
}

// openGGUF loads a GGUF file: hyperparameters, tokenizer and chat template
// all come from its metadata. GGUF carries no generation_config, so the
// sampling defaults are the command's own (llama.cpp's).
func openGGUF(path string, opts gguf.Options) (*model.Model, error) {
	f, err := gguf.OpenWith(path, opts)
	if err != nil {
		return nil, err
	}
	m, err := fromGGUF(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

func fromGGUF(path string, f *gguf.File) (*model.Model, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	spec, err := f.TokenizerSpec()
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.New(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", path, err)
	}
	tmpl := chat.ChatML()
	if src := f.ChatTemplate(); src != "" {
		if tmpl, err = chat.FromSource(src); err != nil {
			return nil, fmt.Errorf("%s: chat template: %w", path, err)
		}
	}
	return model.New(path, "gguf", cfg, f.Tensors(), tok, tmpl, model.Generation{}, f)
}
