package gguf

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

func llamaMeta(extra ...KV) []KV {
	meta := []KV{
		{"general.architecture", "llama"},
		{"llama.block_count", uint32(1)},
		{"llama.embedding_length", uint32(64)},
		{"llama.feed_forward_length", uint32(128)},
		{"llama.attention.head_count", uint32(4)},
		{"llama.attention.head_count_kv", uint32(2)},
		{"llama.attention.key_length", uint32(32)},
		{"llama.rope.freq_base", float32(500000)},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"llama.context_length", uint32(8192)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", "llama-bpe"},
		{"tokenizer.ggml.tokens", Array{TypeString, []string{"a", "b", "<|begin_of_text|>", "<|eot_id|>"}}},
		{"tokenizer.ggml.token_type", Array{TypeInt32, []int32{1, 1, 3, 3}}},
		{"tokenizer.ggml.merges", Array{TypeString, []string{"a b"}}},
		{"tokenizer.ggml.bos_token_id", uint32(2)},
		{"tokenizer.ggml.eos_token_id", uint32(3)},
	}
	for _, kv := range extra {
		replaced := false
		for i := range meta {
			if meta[i].Key == kv.Key {
				meta[i], replaced = kv, true
			}
		}
		if !replaced {
			meta = append(meta, kv)
		}
	}
	return meta
}

func llamaTensors() []*tensor.Tensor {
	return []*tensor.Tensor{
		f32Tensor(model.TokenEmbd, []int{4, 64}, func(i int) float32 { return float32(i) }),
		f32Tensor(model.Output, []int{4, 64}, func(i int) float32 { return float32(i) }),
		rowFill(model.Layer(0, model.AttnQ), 128, 64),
		rowFill(model.Layer(0, model.AttnK), 64, 64),
	}
}

func openWritten(t *testing.T, meta []KV, ts []*tensor.Tensor) *File {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, meta, ts); err != nil {
		t.Fatal(err)
	}
	f, err := OpenBytes("synthetic.gguf", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLlamaConfigAndTokenizer(t *testing.T) {
	f := openWritten(t, llamaMeta(), llamaTensors())
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	want := &model.Config{
		Arch: model.ArchLlama, HiddenSize: 64, IntermediateSize: 128, NumLayers: 1, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 32, VocabSize: 4, MaxPositions: 8192, RopeTheta: 500000, RMSNormEps: 1e-5, BOSTokenID: 2,
		EOSTokenIDs: []int{3},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Config()\n got %+v\nwant %+v", c, want)
	}
	s, err := f.TokenizerSpec()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pre != "llama3" || s.NFC || !s.AddBOS || s.BOS != 2 || !s.IgnoreMerges || !reflect.DeepEqual(s.EOS, []int{3}) || len(s.Added) != 2 {
		t.Errorf("spec %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name     string
		meta     []KV
		notFound bool
	}{
		{"no architecture", []KV{{"x", uint8(1)}}, true},
		{"unknown architecture", llamaMeta(KV{"general.architecture", "mamba"}), false},
		{"missing block count", llamaMeta()[:1], true},
		{"block count as string", llamaMeta(KV{"llama.block_count", "4"}), false},
		{"negative heads", llamaMeta(KV{"llama.attention.head_count_kv", int32(-1)}), false},
		{"heads not dividing", llamaMeta(KV{"llama.attention.head_count_kv", uint32(3)}), false},
		{"rope scaling", llamaMeta(KV{"llama.rope.scaling.type", "yarn"}), false},
		{"eps as int", llamaMeta(KV{"llama.attention.layer_norm_rms_epsilon", uint32(1)}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := openWritten(t, c.meta, nil)
			_, err := f.Config()
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrNotFound) != c.notFound || !strings.Contains(err.Error(), "synthetic.gguf") {
				t.Errorf("error %v", err)
			}
		})
	}
}

func TestTokenizerSpecErrors(t *testing.T) {
	cases := []struct {
		name string
		meta []KV
	}{
		{"no model", []KV{{"x", uint8(1)}}},
		{"llama spm", llamaMeta(KV{"tokenizer.ggml.model", "llama"})},
		{"unknown pre", llamaMeta(KV{"tokenizer.ggml.pre", "deepseek-coder"})},
		{"types length", llamaMeta(KV{"tokenizer.ggml.token_type", Array{TypeInt32, []int32{1}}})},
		{"tokens not strings", llamaMeta(KV{"tokenizer.ggml.tokens", Array{TypeInt32, []int32{1}}})},
		{"bos out of range", llamaMeta(KV{"tokenizer.ggml.bos_token_id", uint32(99)})},
		{"eos out of range", llamaMeta(KV{"tokenizer.ggml.eos_token_id", uint32(99)})},
		{"add bos without bos", func() []KV {
			m := llamaMeta()
			for i := range m {
				if m[i].Key == "tokenizer.ggml.bos_token_id" {
					m[i] = KV{"unrelated", uint8(0)}
				}
			}
			return m
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := openWritten(t, c.meta, nil)
			if _, err := f.TokenizerSpec(); err == nil || !strings.Contains(err.Error(), "synthetic.gguf") {
				t.Errorf("error %v", err)
			}
		})
	}
}
