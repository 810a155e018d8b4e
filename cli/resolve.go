package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/apr-llm/apr/convert"
	"github.com/apr-llm/apr/demo"
	"github.com/apr-llm/apr/hub"
)

// resolveModel turns a command's MODEL argument into a path to open: a file
// or folder that exists is itself; the built-in demo name passes through;
// otherwise a model name or URI (Org/Name, hf://Org/Name/file.gguf, a short
// name such as qwen2.5-coder:1.5b) is looked up in the Hugging Face cache,
// without any request.
func resolveModel(arg string) (string, error) {
	if arg == demo.Name {
		return arg, nil
	}
	if _, err := os.Stat(arg); err == nil {
		return arg, nil
	}
	ref, perr := hub.Parse(arg)
	if perr != nil {
		return arg, nil // not a name either: opening it reports the missing path
	}
	cache := hub.FromEnv().Cache
	p, err := cache.Locate(ref)
	if errors.Is(err, hub.ErrNotCached) {
		return "", fmt.Errorf("model %s: no such file or folder, and not in the model cache %s: download it with `apr pull %s`", arg, cache.Dir, arg)
	}
	if err != nil {
		return "", fmt.Errorf("model %s: %w", arg, err)
	}
	return p, nil
}

// openForConversion resolves arg like resolveModel and opens it for the
// conversion commands (convert, import, export, quantize, rosetta diff).
func openForConversion(arg string) (*convert.Model, error) {
	path, err := resolveModel(arg)
	if err != nil {
		return nil, err
	}
	return convert.Open(path)
}
