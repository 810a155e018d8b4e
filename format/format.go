// Package format opens a model from any supported file format, recognising
// the format from the path's contents, never from its name.
package format

import (
	"fmt"
	"os"

	"github.com/apr-llm/apr/format/hf"
	"github.com/apr-llm/apr/model"
)

// Open loads the model at path: a Hugging Face folder (config.json +
// SafeTensors) or a GGUF file.
func Open(path string) (*model.Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if st.IsDir() {
		if !hf.IsModelDir(path) {
			return nil, fmt.Errorf("model %s: a folder without config.json is not a Hugging Face model folder", path)
		}
		return hf.Load(path)
	}
	magic, err := readMagic(path)
	if err != nil {
		return nil, err
	}
	switch magic {
	case "GGUF":
		return openGGUF(path)
	}
	return nil, fmt.Errorf("model %s: unrecognised file (magic %q): want a GGUF file or a Hugging Face folder", path, magic)
}

func readMagic(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	defer f.Close()
	var b [4]byte
	n, _ := f.Read(b[:])
	return string(b[:n]), nil
}

// openGGUF is wired to format/gguf once that loader exists.
var openGGUF = func(path string) (*model.Model, error) {
	return nil, fmt.Errorf("model %s: GGUF files are not supported yet", path)
}
