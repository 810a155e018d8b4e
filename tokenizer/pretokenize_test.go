package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestSplitsMatchHF compares the hand-written matchers with Hugging Face's
// Qwen2 and LLaMA-3 Split regexes (Oniguruma) and GPT-2's ByteLevel regex on
// 1,000 random strings (testdata/gen_hf_cases.js made them).
func TestSplitsMatchHF(t *testing.T) {
	initClasses()
	data, err := os.ReadFile(filepath.Join("testdata", "hf_split_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Text   string   `json:"text"`
			Qwen2  []string `json:"qwen2"`
			Llama3 []string `json:"llama3"`
			GPT2   []string `json:"gpt2"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 500 {
		t.Fatalf("only %d cases", len(f.Cases))
	}
	splitters := []struct {
		name  string
		split func(string, func(string))
		want  func(i int) []string
	}{
		{"qwen2", func(s string, e func(string)) { splitLlama(s, 1, e) }, func(i int) []string { return f.Cases[i].Qwen2 }},
		{"llama3", func(s string, e func(string)) { splitLlama(s, 3, e) }, func(i int) []string { return f.Cases[i].Llama3 }},
		{"gpt2", splitGPT2, func(i int) []string { return f.Cases[i].GPT2 }},
	}
	for _, sp := range splitters {
		fails := 0
		for i, c := range f.Cases {
			got := pieces(sp.split, c.Text)
			if want := sp.want(i); !reflect.DeepEqual(got, want) {
				fails++
				if fails <= 10 {
					t.Errorf("%s: split(%q) = %q, want %q", sp.name, c.Text, got, want)
				}
			}
		}
		if fails > 0 {
			t.Errorf("%s: %d of %d splits differ", sp.name, fails, len(f.Cases))
		}
	}
}

// pieces returns the byte-level spelling of each piece of s.
func pieces(split func(string, func(string)), s string) []string {
	out := []string{}
	split(s, func(p string) { out = append(out, byteLevelEncode(p)) })
	return out
}

func TestSplitExamples(t *testing.T) {
	initClasses()
	tests := []struct {
		pre, in string
		want    []string
	}{
		{"qwen2", "hello   \n  world  ", []string{"hello", "   \n", " ", " world", "  "}},
		{"qwen2", "What is 2+2?", []string{"What", " is", " ", "2", "+", "2", "?"}},
		{"qwen2", "I'M don't 's", []string{"I", "'M", " don", "'t", " '", "s"}},
		{"qwen2", "a\r\nb\r\n", []string{"a", "\r\n", "b", "\r\n"}},
		{"qwen2", "x  \t\n \ty", []string{"x", "  \t\n", " ", "\ty"}},
		{"qwen2", "foo(bar):\n", []string{"foo", "(bar", "):\n"}},
		{"llama3", "1234567", []string{"123", "456", "7"}},
		{"gpt2", "x   y 12 'll", []string{"x", "  ", " y", " 12", " '", "ll"}},
		{"gpt2", "it's  \n", []string{"it", "'s", "  \n"}},
	}
	for _, tc := range tests {
		var got []string
		emit := func(p string) { got = append(got, p) }
		switch tc.pre {
		case "qwen2":
			splitLlama(tc.in, 1, emit)
		case "llama3":
			splitLlama(tc.in, 3, emit)
		case "gpt2":
			splitGPT2(tc.in, emit)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s split(%q) = %q, want %q", tc.pre, tc.in, got, tc.want)
		}
	}
}
