package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// bench-run's greedy output on the shared Q8_0 file is llama.cpp's: for
// every chat prompt, the answer (up to and including the first EOS) equals
// llama.cpp's greedy ids, and the JSON carries plausible timings.
func TestBenchRunMatchesLlamaCpp(t *testing.T) {
	path := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf")
	kinds := map[string]string{}
	for _, p := range testref.HFOutputs(t) {
		kinds[p.Name] = p.Kind
	}
	checked := 0
	for _, p := range testref.LlamaCppOutputs(t, "q8_0") {
		if kinds[p.Name] != "chat" {
			continue
		}
		ids := make([]string, len(p.LlamaTokens))
		for i, id := range p.LlamaTokens {
			ids[i] = fmt.Sprint(id)
		}
		n := len(p.Greedy32) - 1
		code, out, errOut := apr(t, "", "bench-run", path, "--threads", "2", "--tokens", strings.Join(ids, ","), "-n", fmt.Sprint(n))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", p.Name, code, errOut)
		}
		var r benchResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %v in %q", p.Name, err, out)
		}
		if r.PromptTokens != len(ids) || r.DecodeTokens != n || r.PromptSeconds <= 0 || r.DecodeSeconds <= 0 ||
			r.LoadSeconds <= 0 || r.PeakRSSBytes < r.BaseRSSBytes || r.BaseRSSBytes <= 0 || len(r.Output) != n+1 {
			t.Fatalf("%s: implausible result %+v", p.Name, r)
		}
		end := slices.IndexFunc(p.Greedy32, func(id int) bool { return id == 151645 || id == 151643 })
		if end < 0 {
			end = len(p.Greedy32) - 1
		}
		if !slices.Equal(r.Output[:end+1], p.Greedy32[:end+1]) {
			t.Errorf("%s: answer %v, llama.cpp %v", p.Name, r.Output[:end+1], p.Greedy32[:end+1])
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no chat prompts in llamacpp_outputs.json")
	}
}

func TestBenchRunErrors(t *testing.T) {
	path := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no tokens", []string{"bench-run", path}, "no token ids"},
		{"not a number", []string{"bench-run", path, "--tokens", "1,x"}, `"x" is not a token id`},
		{"outside vocab", []string{"bench-run", path, "--tokens", "1,999999"}, "outside the vocabulary"},
		{"zero predict", []string{"bench-run", path, "--tokens", "1", "-n", "0"}, "at least 1"},
		{"missing model", []string{"bench-run", "/nonexistent.gguf", "--tokens", "1"}, "nonexistent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := apr(t, "", c.args...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q, want an error with %q", code, errOut, c.want)
			}
		})
	}
}

// FuzzParseIDs: parseIDs never panics, and what it accepts prints back to
// the same ids.
func FuzzParseIDs(f *testing.F) {
	for _, s := range []string{"1,2,3", " 7 , 8 ", "", ",", "-1", "99999999999999999999", "1,,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := parseIDs(s)
		if err != nil {
			return
		}
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = fmt.Sprint(id)
		}
		back, err := parseIDs(strings.Join(parts, ","))
		if err != nil || !slices.Equal(back, ids) {
			t.Fatalf("%q -> %v -> %v, %v", s, ids, back, err)
		}
	})
}
