// Package convert moves models between apr's formats: a Hugging Face
// SafeTensors folder, GGUF and APR. It opens any of them as a Model (config,
// full tokenizer, chat template, canonical tensors), checks it (Check: shapes,
// counts, vocabulary, architecture, NaN/Inf), and writes it as GGUF with
// llama.cpp's rules (convert_hf_to_gguf.py's F16/BF16/F32 output, then
// llama-quantize's per-tensor type mixture), as a SafeTensors folder, or as
// APR. Every write goes to a temporary file renamed into place, so a failed or
// interrupted conversion leaves no output.
package convert

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/format/hf"
	"github.com/apr-llm/apr/format/safetensors"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
	"github.com/apr-llm/apr/tokenizer"
)

// Version identifies the converter in the provenance of the files it writes.
const Version = "apr-convert 1"

// Formats of a Model's source.
const (
	FormatSafeTensors = "safetensors"
	FormatGGUF        = "gguf"
	FormatAPR         = "apr"
)

// Model is a model opened for conversion: everything a file format needs to
// write it, with tensors under canonical names and row-major shapes.
type Model struct {
	Path         string
	Format       string // FormatSafeTensors, FormatGGUF or FormatAPR
	Config       *model.Config
	Tokenizer    tokenizer.Spec
	ChatTemplate string
	Generation   model.Generation
	Tensors      []*tensor.Tensor // llama.cpp's order (see SortTensors)
	// Origin is the format the weights were first read from:
	// FormatSafeTensors for a Hugging Face folder and the APR files made from
	// one, FormatGGUF for GGUF files and theirs. It decides whether writing
	// GGUF starts with convert_hf_to_gguf.py's F16 pass.
	Origin string
	// Extra holds GGUF metadata that Config, Tokenizer and ChatTemplate do
	// not carry (general.name, tokenizer.ggml.padding_token_id, ...), kept
	// so that GGUF -> APR -> GGUF gives equivalent metadata.
	Extra []gguf.KV

	closer io.Closer
}

// Close releases the source's mapped files.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	return m.closer.Close()
}

// Tensor returns the tensor with a canonical name.
func (m *Model) Tensor(name string) (*tensor.Tensor, bool) {
	i := slices.IndexFunc(m.Tensors, func(t *tensor.Tensor) bool { return t.Name == name })
	if i < 0 {
		return nil, false
	}
	return m.Tensors[i], true
}

// Open opens a Hugging Face folder, a GGUF or an APR file for conversion
// (format.Detect tells them apart). Every caller reads the tensors' data
// (to write, quantize or compare it), so the files are read in at open
// (populated mappings), and an APR file's checksums are verified first.
func Open(path string) (*Model, error) {
	kind, err := format.Detect(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("convert: %w", err)
	case kind == format.KindGGUF:
		return openGGUF(path)
	case kind == format.KindAPR:
		return openAPR(path)
	}
	return openHF(path)
}

func openHF(dir string) (*Model, error) {
	hm, err := hf.LoadWith(dir, safetensors.Options{Populate: true})
	if err != nil {
		return nil, err
	}
	spec, err := tokenizer.SpecFromDir(dir)
	if err != nil {
		hm.Close()
		return nil, fmt.Errorf("%s: tokenizer: %w", dir, err)
	}
	m := &Model{Path: dir, Format: FormatSafeTensors, Origin: FormatSafeTensors, Config: hm.Config,
		Tokenizer: spec, Generation: hm.Generation, closer: hm}
	if hm.Template != nil {
		m.ChatTemplate = hm.Template.Source()
	}
	for _, t := range hm.Tensors {
		m.Tensors = append(m.Tensors, t)
	}
	SortTensors(m.Tensors)
	return m, nil
}

func openGGUF(path string) (*Model, error) {
	f, err := gguf.OpenWith(path, gguf.Options{Populate: true})
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

func fromGGUF(path string, f *gguf.File) (*Model, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	spec, err := f.TokenizerSpec()
	if err != nil {
		return nil, err
	}
	m := &Model{Path: path, Format: FormatGGUF, Origin: FormatGGUF, Config: cfg, Tokenizer: spec,
		ChatTemplate: f.ChatTemplate(), Tensors: slices.Clone(f.Tensors()), closer: f}
	if _, ok := f.Tensor(model.Output); !ok {
		cfg.TieWordEmbeddings = true
	}
	built, err := gguf.Metadata(cfg, &spec, m.ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	generated := map[string]bool{}
	for _, kv := range built {
		generated[kv.Key] = true
	}
	for _, kv := range f.KVs() {
		if !generated[kv.Key] && !derivedKey(kv.Key) {
			m.Extra = append(m.Extra, kv)
		}
	}
	SortTensors(m.Tensors)
	return m, nil
}

// derivedKey reports keys the GGUF writer computes from the tensors or the
// file layout, never copied from a source.
func derivedKey(key string) bool {
	switch key {
	case gguf.KeyAlignment, gguf.KeySplitNo, gguf.KeySplitCount, gguf.KeySplitTensors:
		return true
	}
	return false
}

// SortTensors orders tensors as llama.cpp's model loader does
// (weight_name_comparer on GGML names): model-wide tensors first, then each
// layer's, by layer number, each group by name.
func SortTensors(ts []*tensor.Tensor) {
	type key struct {
		layer int
		name  string
	}
	keyOf := func(t *tensor.Tensor) key {
		n := ggmlName(t.Name)
		layer := -1
		if rest, ok := strings.CutPrefix(n, "blk."); ok {
			num, _, _ := strings.Cut(rest, ".")
			if v, err := strconv.Atoi(num); err == nil {
				layer = v
			}
		}
		return key{layer, n}
	}
	slices.SortStableFunc(ts, func(a, b *tensor.Tensor) int {
		ka, kb := keyOf(a), keyOf(b)
		if c := cmp.Compare(ka.layer, kb.layer); c != 0 {
			return c
		}
		return strings.Compare(ka.name, kb.name)
	})
}

// WriteAtomic writes a file through write into a temporary file beside
// path, then renames it to path; on any error, or when ctx is cancelled, the
// temporary file is removed and path is untouched.
func WriteAtomic(ctx context.Context, path string, write func(w io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(&ctxWriter{ctx, f}); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("convert: %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("convert: %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("convert: %s: %w", path, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("convert: %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("convert: %s: %w", path, err)
	}
	return nil
}

// ctxWriter fails writes once its context is cancelled, so that an
// interrupted conversion stops at its next write.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
