package gguf

import (
	"fmt"
	"strings"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tokenizer"
)

// ggmlPre maps the tokenizer package's pre-tokenizer names to
// tokenizer.ggml.pre values llama.cpp knows.
var ggmlPre = map[string]string{"qwen2": "qwen2", "llama3": "llama-bpe", "gpt2": "gpt-2", "": "qwen2"}

// Metadata builds the GGUF metadata llama.cpp needs to load a model with the
// given hyperparameters, tokenizer and chat template (empty: none), with the
// keys and token types llama.cpp's convert_hf_to_gguf.py writes. It is the
// inverse of Config, TokenizerSpec and ChatTemplate. Unused token ids ("" in
// the spec) are written as "[PAD<id>]" of type UNUSED; added tokens that are
// special, or look special (<|...|>), are CONTROL, other added tokens
// USER_DEFINED.
func Metadata(cfg *model.Config, spec *tokenizer.Spec, chatTemplate string) ([]KV, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gguf: metadata: %w", err)
	}
	arch := string(cfg.Arch)
	if cfg.Arch != model.ArchQwen2 && cfg.Arch != model.ArchLlama {
		return nil, fmt.Errorf("gguf: metadata: architecture %q is not supported", arch)
	}
	u32 := func(n int, what string) (uint32, error) {
		if n < 0 || uint64(n) > 1<<32-1 {
			return 0, fmt.Errorf("gguf: metadata: %s %d does not fit a uint32", what, n)
		}
		return uint32(n), nil
	}
	meta := []KV{{KeyArchitecture, arch}}
	for _, p := range []struct {
		key string
		n   int
	}{
		{"block_count", cfg.NumLayers},
		{"context_length", cfg.MaxPositions},
		{"embedding_length", cfg.HiddenSize},
		{"feed_forward_length", cfg.IntermediateSize},
		{"attention.head_count", cfg.NumHeads},
		{"attention.head_count_kv", cfg.NumKVHeads},
	} {
		v, err := u32(p.n, p.key)
		if err != nil {
			return nil, err
		}
		meta = append(meta, KV{arch + "." + p.key, v})
	}
	meta = append(meta,
		KV{arch + ".rope.freq_base", float32(cfg.RopeTheta)},
		KV{arch + ".attention.layer_norm_rms_epsilon", float32(cfg.RMSNormEps)})
	if cfg.HeadDim != cfg.HiddenSize/cfg.NumHeads {
		v, err := u32(cfg.HeadDim, "head dim")
		if err != nil {
			return nil, err
		}
		meta = append(meta, KV{arch + ".attention.key_length", v}, KV{arch + ".attention.value_length", v})
	}
	if spec == nil {
		return meta, nil
	}

	pre, ok := ggmlPre[spec.Pre]
	if !ok {
		return nil, fmt.Errorf("gguf: metadata: pre-tokenizer %q has no llama.cpp name", spec.Pre)
	}
	n := len(spec.Tokens)
	tokens := make([]string, n)
	types := make([]int32, n)
	for id, s := range spec.Tokens {
		tokens[id], types[id] = s, tokenNormal
		if s == "" {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokenUnused
		}
	}
	for _, a := range spec.Added {
		if a.ID < 0 || a.ID >= n {
			return nil, fmt.Errorf("gguf: metadata: added token %q has id %d outside the %d tokens", a.Content, a.ID, n)
		}
		tokens[a.ID], types[a.ID] = a.Content, tokenUserDef
		if a.Special || looksSpecial(a.Content) {
			types[a.ID] = tokenControl
		}
	}
	meta = append(meta,
		KV{keyTokModel, "gpt2"},
		KV{keyTokPre, pre},
		KV{keyTokens, Array{TypeString, tokens}},
		KV{keyTokenType, Array{TypeInt32, types}},
		KV{keyMerges, Array{TypeString, append([]string{}, spec.Merges...)}})
	eos := spec.EOS
	if len(eos) == 0 {
		eos = cfg.EOSTokenIDs
	}
	if len(eos) > 0 {
		v, err := u32(eos[0], "eos id")
		if err != nil {
			return nil, err
		}
		meta = append(meta, KV{keyEOS, v})
	}
	bos := spec.BOS
	if bos < 0 {
		bos = cfg.BOSTokenID
	}
	if bos >= 0 {
		v, err := u32(bos, "bos id")
		if err != nil {
			return nil, err
		}
		meta = append(meta, KV{keyBOS, v})
	}
	meta = append(meta, KV{keyAddBOS, spec.AddBOS})
	if chatTemplate != "" {
		meta = append(meta, KV{KeyChatTemplate, chatTemplate})
	}
	return meta, nil
}

// looksSpecial is convert_hf_to_gguf.py's does_token_look_special: such added
// tokens become CONTROL even when Hugging Face does not mark them special.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return (strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>")) ||
		(strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>")) ||
		(strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">"))
}
