package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/internal/testref"
)

// bench-run's greedy output on the shared Q8_0 file is llama.cpp's: for
// every chat prompt, the answer (up to and including the first EOS) equals
// llama.cpp's greedy ids, and the JSON carries plausible timings; on the CPU
// and, where a GPU is present, with --cuda (three streams as well).
func TestBenchRunMatchesLlamaCpp(t *testing.T) {
	path := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf")
	kinds := map[string]string{}
	for _, p := range testref.HFOutputs(t) {
		kinds[p.Name] = p.Kind
	}
	for _, mode := range []struct {
		name    string
		args    []string
		streams int
	}{
		{"cpu", []string{"--threads", "2"}, 0},
		{"cuda", []string{"--cuda", "--streams", "3", "--stream-prompt", "8"}, 3},
	} {
		t.Run(mode.name, func(t *testing.T) {
			if mode.streams > 0 {
				if ok, why := cuda.Available(); !ok {
					t.Skip(why)
				}
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
				args := append([]string{"bench-run", path, "--tokens", strings.Join(ids, ","), "-n", fmt.Sprint(n)}, mode.args...)
				code, out, errOut := apr(t, "", args...)
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
				if s := r.streamResult; s.Streams != mode.streams || (s.Streams > 0 && (s.DecodeTokens != s.Streams*n ||
					s.PromptTokens != s.Streams*8 || s.DecodeSeconds <= 0 || s.PromptSeconds <= 0 || r.Device == "")) {
					t.Fatalf("%s: implausible streams %+v on device %q", p.Name, s, r.Device)
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
		})
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
		{"cache type", []string{"bench-run", path, "--tokens", "1", "-ctk", "q8_0"}, "apr stores the KV cache as f32 or f16"},
		{"negative streams", []string{"bench-run", path, "--tokens", "1", "--cuda", "--streams", "-1"}, "must not be negative"},
		{"outside vocab on the GPU", []string{"bench-run", path, "--tokens", "1,999999", "--cuda"}, "outside the vocabulary"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if ok, why := cuda.Available(); !ok && slices.Contains(c.args, "--cuda") {
				// Without a GPU every --cuda run stops on the driver's reason.
				c.want = why
			}
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
