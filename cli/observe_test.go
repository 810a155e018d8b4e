package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apr-llm/apr/check"
	"github.com/apr-llm/apr/internal/breakmodel"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/profile"
)

// TestCheckCommand: apr check passes the tiny model (table on stdout, exit
// 0) and fails a copy with a swapped tensor, exit 1, naming the stage.
func TestCheckCommand(t *testing.T) {
	code, out, errOut := apr(t, "", "check", testref.ModelDir(t), "-t", "2")
	if code != 0 || !strings.Contains(out, "all 10 stages passed") || !strings.Contains(out, "sha256 ") {
		t.Fatalf("healthy model: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	dir := t.TempDir()
	if err := breakmodel.Copy(testref.ModelDir(t), dir, breakmodel.Swap(model.Layer(0, model.AttnQ), model.Layer(0, model.AttnO))); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = apr(t, "", "check", dir, "--json", "-t", "2")
	var r check.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v in %q", err, out)
	}
	if code != 1 || r.Pass || !strings.Contains(errOut, "stage 9 (logits -> probs)") {
		t.Errorf("swapped model: exit %d, pass %v, stderr %q; want exit 1 naming stage 9", code, r.Pass, errOut)
	}
}

// TestProfileCommand: apr profile --json reports every brick of the CPU's
// forward pass and a sum that the measured total accounts for.
func TestProfileCommand(t *testing.T) {
	code, out, errOut := apr(t, "", "profile", "--json", "-n", "4", "-t", "2", "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var r profile.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v in %q", err, out)
	}
	if len(r.Bricks) != len(profile.Order) || r.Tokens != 4 || r.BrickSum+r.Unattributed != r.Measured || r.Device != "cpu" {
		t.Errorf("profile %+v", r)
	}
}

// TestTraceFlag: --trace on run and chat writes a trace that parses, with
// one pass per forward pass.
func TestTraceFlag(t *testing.T) {
	q := "What is 2+2? Answer with just the number."
	for _, args := range [][]string{
		{"run", testref.ModelDir(t), "--temperature", "0", q},
		{"chat", testref.ModelDir(t), "--temperature", "0"},
	} {
		path := filepath.Join(t.TempDir(), "trace.jsonl")
		code, out, errOut := apr(t, q+"\n", append(args, "--trace", path)...)
		if code != 0 || strings.TrimSpace(out) != "4" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", args[0], code, out, errOut)
		}
		tr := readTrace(t, path)
		// "4" then EOS: the prompt's pass and the pass feeding "4".
		if len(tr.Passes) != 2 || tr.Header.Format != "safetensors" {
			t.Errorf("%s: %d passes, header %+v", args[0], len(tr.Passes), tr.Header)
		}
	}
}

// TestVerboseFigures: --verbose names the quantization, memory, time to
// first token and speeds on stderr, and stdout stays the answer.
func TestVerboseFigures(t *testing.T) {
	code, out, errOut := apr(t, "", "run", "--verbose", "--temperature", "0", "What is 2+2? Answer with just the number.")
	if code != 0 || out != "4\n" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"(gguf)", "qwen2", "threads", "Q4_K x 2", "resident memory", "time to first token", "prefill", "decode", "KV cache"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
}
