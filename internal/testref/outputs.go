package testref

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"testing"
)

// Prompt is one entry of hf_outputs.json (transformers' reference run).
type Prompt struct {
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	Messages     []json.RawMessage `json:"messages"`
	Tools        []json.RawMessage `json:"tools"`
	Text         string            `json:"text"`
	TokenIDs     []int             `json:"token_ids"`
	ArgmaxPerPos []int             `json:"argmax_per_position"`
	LastTop20    [][2]float64      `json:"last_top20_logits"`
	Greedy32     []int             `json:"greedy32_ids"`
	Greedy32Top2 [][][2]float64    `json:"greedy32_top2"`
	Greedy32Text string            `json:"greedy32_text"`
}

// HFOutputs reads testdata/reference/hf_outputs.json.
func HFOutputs(t testing.TB) []Prompt {
	t.Helper()
	var f struct {
		Prompts []Prompt `json:"prompts"`
	}
	readJSON(t, Path(t, "testdata", "reference", "hf_outputs.json"), &f)
	if len(f.Prompts) == 0 {
		t.Fatalf("testref: hf_outputs.json has no prompts")
	}
	return f.Prompts
}

// LlamaPrompt is one prompt's entry for one file in llamacpp_outputs.json.
type LlamaPrompt struct {
	Name         string         `json:"name"`
	LlamaTokens  []int          `json:"llama_tokens"`
	ArgmaxPerPos []int          `json:"argmax_per_position"`
	Top2PerPos   [][][2]float64 `json:"top2_per_position"`
	LastTop20    [][2]float64   `json:"last_top20_logits"`
	Greedy32     []int          `json:"greedy32_ids"`
	Greedy32Top2 [][][2]float64 `json:"greedy32_top2"`
}

// HFLogitsPrompt0 reads the full last-position logits of prompt 0.
func HFLogitsPrompt0(t testing.TB) []float32 {
	t.Helper()
	raw, err := os.ReadFile(Path(t, "testdata", "reference", "hf_logits_prompt0.f32"))
	if err != nil {
		t.Fatalf("testref: %v", err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testref: %v", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("testref: %s: %v", path, err)
	}
}

// LlamaCppOutputs reads llamacpp_outputs.json's prompts for one file key
// ("f16", "q8_0" or "q4_k_m").
func LlamaCppOutputs(t testing.TB, key string) []LlamaPrompt {
	t.Helper()
	var f struct {
		Files map[string]struct {
			File    string        `json:"file"`
			Prompts []LlamaPrompt `json:"prompts"`
		} `json:"files"`
	}
	readJSON(t, Path(t, "testdata", "reference", "llamacpp_outputs.json"), &f)
	e, ok := f.Files[key]
	if !ok || len(e.Prompts) == 0 {
		t.Fatalf("testref: llamacpp_outputs.json has no prompts for %q", key)
	}
	return e.Prompts
}

// TokenizerCase is one entry of tokenizer_cases.json (Hugging Face's fast
// tokenizer, add_special_tokens=False).
type TokenizerCase struct {
	Text    string `json:"text"`
	IDs     []int  `json:"ids"`
	Decoded string `json:"decoded"`
}

// TokenizerCases reads testdata/reference/tokenizer_cases.json.
func TokenizerCases(t testing.TB) []TokenizerCase {
	t.Helper()
	var f struct {
		Cases []TokenizerCase `json:"cases"`
	}
	readJSON(t, Path(t, "testdata", "reference", "tokenizer_cases.json"), &f)
	if len(f.Cases) == 0 {
		t.Fatalf("testref: tokenizer_cases.json has no cases")
	}
	return f.Cases
}
