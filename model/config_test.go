package model

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// qwen15 is Qwen2.5-Coder-1.5B-Instruct's config.json as Hugging Face ships
// it (the fields apr reads and a few it ignores).
const qwen15 = `{"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151645,
 "hidden_act": "silu", "hidden_size": 1536, "intermediate_size": 8960, "max_position_embeddings": 32768,
 "model_type": "qwen2", "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
 "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": true,
 "torch_dtype": "bfloat16", "use_sliding_window": false, "vocab_size": 151936}`

// llama3 is a LLaMA-3-style config in transformers 5's layout (rope
// parameters in their own object, several EOS ids, no Q/K/V biases).
const llama3 = `{"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
 "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
 "max_position_embeddings": 8192, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
 "rms_norm_eps": 1e-05, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
 "tie_word_embeddings": true}`

func TestParseHFConfig(t *testing.T) {
	shared, err := os.ReadFile(testref.Path(t, "models", "qwen2-tiny-coder", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	good := []struct {
		name string
		json string
		want Config
	}{
		{"shared tiny model", string(shared), Config{Arch: ArchQwen2, HiddenSize: 128, IntermediateSize: 512, NumLayers: 4,
			NumHeads: 2, NumKVHeads: 1, HeadDim: 64, VocabSize: 151936, MaxPositions: 32768, RopeTheta: 1e6, RMSNormEps: 1e-6,
			TieWordEmbeddings: true, AttentionBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151645}}},
		{"Qwen2.5-Coder-1.5B", qwen15, Config{Arch: ArchQwen2, HiddenSize: 1536, IntermediateSize: 8960, NumLayers: 28,
			NumHeads: 12, NumKVHeads: 2, HeadDim: 128, VocabSize: 151936, MaxPositions: 32768, RopeTheta: 1e6, RMSNormEps: 1e-6,
			TieWordEmbeddings: true, AttentionBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151645}}},
		{"LLaMA, rope_parameters", llama3, Config{Arch: ArchLlama, HiddenSize: 2048, IntermediateSize: 8192, NumLayers: 16,
			NumHeads: 32, NumKVHeads: 8, HeadDim: 64, VocabSize: 128256, MaxPositions: 8192, RopeTheta: 5e5, RMSNormEps: 1e-5,
			TieWordEmbeddings: true, BOSTokenID: 128000, EOSTokenIDs: []int{128001, 128008, 128009}}},
		{"defaults", `{"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
			"num_attention_heads": 4, "vocab_size": 100}`, Config{Arch: ArchLlama, HiddenSize: 64, IntermediateSize: 128,
			NumLayers: 2, NumHeads: 4, NumKVHeads: 4, HeadDim: 16, VocabSize: 100, MaxPositions: 32768, RopeTheta: 10000,
			RMSNormEps: 1e-6, BOSTokenID: -1}},
	}
	for _, c := range good {
		got, err := ParseHFConfig([]byte(c.json))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, *got, c.want)
		}
	}

	// Each bad file is the 1.5B config with one field changed.
	bad := []struct {
		name, from, to, err string
	}{
		{"not JSON", `{"architectures"`, `{"architectures`, "config.json: "},
		{"model type", `"model_type": "qwen2"`, `"model_type": "gpt2"`, `unsupported model_type "gpt2"`},
		{"rope type", `"rope_theta": 1000000.0`, `"rope_parameters": {"rope_theta": 1e6, "rope_type": "yarn"}`, `rope_type "yarn" is not supported`},
		{"no layers", `"num_hidden_layers": 28`, `"num_hidden_layers": 0`, "sizes must be positive"},
		{"negative vocab", `"vocab_size": 151936`, `"vocab_size": -1`, "sizes must be positive"},
		{"kv heads", `"num_key_value_heads": 2`, `"num_key_value_heads": 5`, "not a multiple of 5 kv heads"},
		{"odd head dim", `"num_attention_heads": 12`, `"num_attention_heads": 12, "head_dim": 127`, "head dim 127"},
		{"huge head dim", `"num_attention_heads": 12`, `"num_attention_heads": 12, "head_dim": 4611686018427387904`, "implausible sizes"},
		{"huge vocab", `"vocab_size": 151936`, `"vocab_size": 1099511627776`, "implausible sizes"},
		{"huge intermediate", `"intermediate_size": 8960`, `"intermediate_size": 1073741824`, "implausible sizes"},
		{"negative context", `"max_position_embeddings": 32768`, `"max_position_embeddings": -5`, "context length -5"},
		{"negative rope theta", `"rope_theta": 1000000.0`, `"rope_theta": -1`, "rope theta -1"},
		{"negative eps", `"rms_norm_eps": 1e-06`, `"rms_norm_eps": -1e-06`, "rms norm eps"},
		{"eos not a number", `"eos_token_id": 151645`, `"eos_token_id": "</s>"`, "eos_token_id: want an integer"},
		{"eos past vocab", `"eos_token_id": 151645`, `"eos_token_id": [151645, 151936]`, "EOS token id 151936 is outside the vocabulary of 151936"},
		{"negative eos", `"eos_token_id": 151645`, `"eos_token_id": -3`, "EOS token id -3"},
		{"bos past vocab", `"bos_token_id": 151643`, `"bos_token_id": 200000`, "BOS token id 200000"},
	}
	for _, c := range bad {
		if !strings.Contains(qwen15, c.from) {
			t.Fatalf("%s: the 1.5B config has no %q", c.name, c.from)
		}
		_, err := ParseHFConfig([]byte(strings.Replace(qwen15, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
		}
	}
}

func TestParseGenerationConfig(t *testing.T) {
	g, err := ParseGenerationConfig([]byte(`{"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
		"pad_token_id": 151643, "repetition_penalty": 1.1, "temperature": 0.7, "top_k": 20, "top_p": 0.8}`))
	if err != nil {
		t.Fatal(err)
	}
	if g.DoSample == nil || !*g.DoSample || g.Temperature == nil || *g.Temperature != 0.7 || g.TopK == nil || *g.TopK != 20 ||
		g.TopP == nil || *g.TopP != 0.8 || g.RepeatPenalty == nil || *g.RepeatPenalty != 1.1 || g.MinP != nil ||
		!slices.Equal(g.EOSTokenIDs, []int{151645, 151643}) {
		t.Errorf("parsed %+v", g)
	}
	for _, bad := range []string{`{"temperature": "hot"}`, `{"eos_token_id": [1, "x"]}`, `[`} {
		if _, err := ParseGenerationConfig([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "generation_config.json: ") {
			t.Errorf("%s: error %v, want one naming generation_config.json", bad, err)
		}
	}
}

// FuzzParseHFConfig checks that any config.json either fails with an
// error or gives a config that passes Validate and whose widths are
// positive (no overflow in the products of its sizes).
func FuzzParseHFConfig(f *testing.F) {
	f.Add([]byte(qwen15))
	f.Add([]byte(llama3))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseHFConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseHFConfig accepted a config that fails Validate: %v", err)
		}
		h, q, kv, ffn := c.Dims()
		if h <= 0 || q <= 0 || kv <= 0 || ffn <= 0 || c.MaxPositions < 0 || q*c.VocabSize/c.VocabSize != q {
			t.Fatalf("widths %d %d %d %d, context %d", h, q, kv, ffn, c.MaxPositions)
		}
	})
}

// FuzzParseGenerationConfig checks that any generation_config.json parses
// or fails with an error naming the file, never panics.
func FuzzParseGenerationConfig(f *testing.F) {
	f.Add([]byte(`{"do_sample": true, "eos_token_id": [151645, 151643], "temperature": 0.7, "top_k": 20, "top_p": 0.8}`))
	f.Add([]byte(`{"eos_token_id": null, "min_p": 0.05}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseGenerationConfig(data); err != nil && !strings.HasPrefix(err.Error(), "generation_config.json: ") {
			t.Fatalf("error %q does not name the file", err)
		}
	})
}
