package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/apr-llm/apr/format/apr"
)

// openAPR opens an APR file, verifying every checksum first: a conversion
// must not copy damaged weights.
func openAPR(path string) (*Model, error) {
	f, err := apr.Open(path, apr.Options{Verify: true, Populate: true})
	if err != nil {
		return nil, err
	}
	m, err := fromAPR(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

func fromAPR(f *apr.File) (*Model, error) {
	cfg, err := f.Meta.ModelConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path(), err)
	}
	spec, err := f.Meta.TokenizerSpec()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path(), err)
	}
	extra, err := apr.DecodeGGUF(f.Meta.GGUF)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path(), err)
	}
	origin := f.Meta.Provenance.Origin
	if origin == "" {
		origin = FormatAPR
	}
	m := &Model{Path: f.Path(), Format: FormatAPR, Origin: origin, Config: cfg, Tokenizer: spec,
		ChatTemplate: f.Meta.ChatTemplate, Generation: f.Meta.ModelGeneration(), Extra: extra,
		Tensors: append(f.Tensors()[:0:0], f.Tensors()...), closer: f}
	SortTensors(m.Tensors)
	return m, nil
}

// APROptions tune WriteAPR.
type APROptions struct {
	// FuseQKV stores each layer's Q/K/V as one tensor (see apr.WriteOptions).
	FuseQKV bool
}

// WriteAPR checks m (see Check) and writes it atomically as an APR file,
// tensors stored as they are (never re-quantized), with m's provenance: the
// source path, the SHA-256 of its weight files and the converter version.
func WriteAPR(ctx context.Context, path string, m *Model, opts APROptions) error {
	if err := Check(m); err != nil {
		return err
	}
	md, err := aprMetadata(m)
	if err != nil {
		return err
	}
	return WriteAtomic(ctx, path, func(w io.Writer) error {
		return apr.Write(w, md, m.Tensors, apr.WriteOptions{FuseQKV: opts.FuseQKV})
	})
}

func aprMetadata(m *Model) (*apr.Metadata, error) {
	sum, err := sourceSHA256(m.Path)
	if err != nil {
		return nil, err
	}
	prov := apr.Provenance{Source: m.Path, SourceFormat: m.Format, SourceSHA256: sum, Origin: m.Origin, Converter: Version}
	md := apr.NewMetadata(m.Config, &m.Tokenizer, m.ChatTemplate, &m.Generation, prov)
	if md.GGUF, err = apr.EncodeGGUF(m.Extra); err != nil {
		return nil, fmt.Errorf("convert: %s: %w", m.Path, err)
	}
	return md, nil
}

// sourceSHA256 hashes a model file, or a folder's *.safetensors files in
// name order.
func sourceSHA256(path string) (string, error) {
	files := []string{path}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.safetensors")); err != nil {
			return "", fmt.Errorf("convert: %w", err)
		}
		sort.Strings(files)
	}
	h := sha256.New()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return "", fmt.Errorf("convert: provenance: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("convert: provenance: %s: %w", name, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
