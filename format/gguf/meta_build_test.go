package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tokenizer"
)

// Metadata built from the Hugging Face folder (config.json, tokenizer.json)
// or from the GGUF's own Config and TokenizerSpec has the same values as
// llama.cpp's converter wrote for every key it produces.
func TestMetadataMatchesConverter(t *testing.T) {
	f := openReal(t, "q8_0")
	gcfg, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	gspec, err := f.TokenizerSpec()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(testref.ModelDir(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	hcfg, err := model.ParseHFConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	hspec, err := tokenizer.SpecFromDir(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	// The HF tokenizer is not padded to the embedding's rows; pad it as
	// the converter does.
	for len(hspec.Tokens) < hcfg.VocabSize {
		hspec.Tokens = append(hspec.Tokens, "")
	}
	for _, c := range []struct {
		name string
		cfg  *model.Config
		spec *tokenizer.Spec
	}{
		{"from gguf", gcfg, &gspec},
		{"from hf", hcfg, &hspec},
	} {
		t.Run(c.name, func(t *testing.T) {
			meta, err := Metadata(c.cfg, c.spec, f.ChatTemplate())
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range meta {
				orig, ok := f.Value(kv.Key)
				if !ok {
					t.Errorf("%s: not in llama.cpp's file", kv.Key)
					continue
				}
				if !reflect.DeepEqual(orig, kv.Value) {
					t.Errorf("%s = %.100v, llama.cpp wrote %.100v", kv.Key, kv.Value, orig)
				}
			}
			// A file written with this metadata and the original tensors
			// reads back to the same Config and tokenizer.
			var buf bytes.Buffer
			if err := Write(&buf, meta, f.Tensors()); err != nil {
				t.Fatal(err)
			}
			back, err := OpenBytes("built.gguf", buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			bcfg, err := back.Config()
			if err != nil {
				t.Fatal(err)
			}
			bspec, err := back.TokenizerSpec()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(bcfg, gcfg) {
				t.Errorf("config\n got %+v\nwant %+v", bcfg, gcfg)
			}
			if !reflect.DeepEqual(bspec, gspec) {
				t.Error("tokenizer spec differs")
			}
		})
	}
}

func TestMetadataErrors(t *testing.T) {
	good := &model.Config{Arch: model.ArchQwen2, HiddenSize: 8, IntermediateSize: 8, NumLayers: 1, NumHeads: 1,
		NumKVHeads: 1, HeadDim: 8, VocabSize: 2, RopeTheta: 1, RMSNormEps: 1, BOSTokenID: -1}
	if _, err := Metadata(good, nil, ""); err != nil {
		t.Fatal(err)
	}
	bad := *good
	bad.NumHeads = 0
	if _, err := Metadata(&bad, nil, ""); err == nil {
		t.Error("invalid config: no error")
	}
	if _, err := Metadata(good, &tokenizer.Spec{Tokens: []string{"a"}, Pre: "bloom"}, ""); err == nil {
		t.Error("unknown pre-tokenizer: no error")
	}
	if _, err := Metadata(good, &tokenizer.Spec{Tokens: []string{"a"}, Added: []tokenizer.AddedToken{{ID: 5}}}, ""); err == nil {
		t.Error("added token out of range: no error")
	}
}
