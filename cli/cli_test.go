package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// apr runs the command tree in process and returns exit code, stdout, stderr.
func apr(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunAnswersTwoPlusTwo(t *testing.T) {
	dir := testref.ModelDir(t)
	// Default sampling (the model's generation_config.json: top-p 0.8 keeps
	// only "4", p = 0.999) and greedy must both answer 4.
	for _, extra := range [][]string{nil, {"--temperature", "0"}} {
		args := append([]string{"run", dir, "What is 2+2? Answer with just the number."}, extra...)
		code, out, errOut := apr(t, "", args...)
		if code != 0 {
			t.Fatalf("apr %v: exit %d, stderr %q", args, code, errOut)
		}
		if out != "4\n" {
			t.Fatalf("apr %v: stdout %q, want \"4\\n\"", args, out)
		}
	}
}

// TestRunBuiltinDemo: with no model argument the embedded Q4_K_M demo
// model answers, with the default (llama.cpp) sampling settings.
func TestRunBuiltinDemo(t *testing.T) {
	code, out, errOut := apr(t, "", "run", "What is 2+2? Answer with just the number.")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if out != "4\n" {
		t.Fatalf("stdout %q, want \"4\\n\"", out)
	}
}

func TestRunVerboseGoesToStderr(t *testing.T) {
	dir := testref.ModelDir(t)
	code, out, errOut := apr(t, "", "run", dir, "--verbose", "--temp", "0", "-n", "8", "--raw", "def fibonacci(n):\n")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"qwen2", "prefill", "decode", "tok/s"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	if strings.Contains(out, "tok/s") {
		t.Errorf("stdout carries log text: %q", out)
	}
}

func TestRunRawMatchesGreedyReference(t *testing.T) {
	dir := testref.ModelDir(t)
	var p testref.Prompt
	for _, q := range testref.HFOutputs(t) {
		if q.Name == "raw_python" {
			p = q
		}
	}
	if p.Name == "" {
		t.Fatal("raw_python prompt missing from hf_outputs.json")
	}
	// 8 greedy tokens of transformers' continuation, decoded by our tokenizer
	// path end to end (template off, EOS never reached in 8 steps).
	code, out, errOut := apr(t, "", "run", dir, "--raw", "--temperature", "0", "-n", "8", p.Text)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	wantPrefix := greedyTextPrefix(t, p.Greedy32Text, out)
	if !strings.HasPrefix(p.Greedy32Text, strings.TrimSuffix(out, "\n")) || wantPrefix == "" {
		t.Fatalf("run --raw printed %q, transformers' greedy text starts %q", out, p.Greedy32Text[:min(60, len(p.Greedy32Text))])
	}
}

func greedyTextPrefix(t *testing.T, full, out string) string {
	t.Helper()
	out = strings.TrimSuffix(out, "\n")
	if len(out) > len(full) {
		return ""
	}
	return full[:len(out)]
}

func TestStopString(t *testing.T) {
	dir := testref.ModelDir(t)
	code, out, errOut := apr(t, "", "run", dir, "--raw", "--temperature", "0", "-n", "32", "--stop", "(", "def fibonacci(n):\n")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "(") {
		t.Fatalf("output %q contains the stop string", out)
	}
}

func TestChatPiped(t *testing.T) {
	dir := testref.ModelDir(t)
	code, out, errOut := apr(t, "What is 2+2? Answer with just the number.\n", "chat", dir, "--temperature", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if out != "4\n" {
		t.Fatalf("chat stdout %q, want \"4\\n\"", out)
	}
	// Two turns: the second answer comes with the first in context.
	code, out, errOut = apr(t, "What is 2+2? Answer with just the number.\nWhat is 3+5? Answer with just the number.\n", "chat", dir, "--temperature", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || lines[0] != "4" {
		t.Fatalf("two-turn chat printed %q", out)
	}
}

func TestTokenize(t *testing.T) {
	dir := testref.ModelDir(t)
	for _, p := range testref.HFOutputs(t)[:3] {
		code, out, errOut := apr(t, "", "tokenize", dir, p.Text)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var ids []int
		if err := json.Unmarshal([]byte(out), &ids); err != nil {
			t.Fatalf("stdout %q: %v", out, err)
		}
		if len(ids) != len(p.TokenIDs) {
			t.Fatalf("%s: %d ids, want %d", p.Name, len(ids), len(p.TokenIDs))
		}
		for i := range ids {
			if ids[i] != p.TokenIDs[i] {
				t.Fatalf("%s: id %d = %d, want %d", p.Name, i, ids[i], p.TokenIDs[i])
			}
		}
	}
	code, out, _ := apr(t, "", "tokenize", "--with-text", dir, "hello world")
	var pieces []struct {
		ID   int    `json:"id"`
		Text string `json:"text"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &pieces) != nil || len(pieces) != 2 || pieces[1].Text != " world" {
		t.Fatalf("tokenize --with-text: exit %d, %q", code, out)
	}
}

func TestErrors(t *testing.T) {
	dir := testref.ModelDir(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing model", []string{"run", "/nonexistent/model", "hi"}, "no such file"},
		{"not a model folder", []string{"run", t.TempDir(), "hi"}, "config.json"},
		{"prompt longer than context", []string{"run", dir, "--ctx-size", "8", "hello there, how are you today my friend?"}, "context"},
		{"unknown flag", []string{"run", "--bogus", dir, "hi"}, "unknown flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := apr(t, "", c.args...)
			if code == 0 {
				t.Fatalf("exit 0, stdout %q", out)
			}
			if !strings.Contains(errOut, c.want) {
				t.Fatalf("stderr %q lacks %q", errOut, c.want)
			}
		})
	}
}
