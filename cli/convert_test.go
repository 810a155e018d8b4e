package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// TestConvertCommands runs import, convert, quantize, export and rosetta
// as a user would, checking outputs, exit codes and that refused
// conversions write nothing.
func TestConvertCommands(t *testing.T) {
	dir := testref.ModelDir(t)
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	ok := func(args ...string) string {
		t.Helper()
		code, out, errOut := apr(t, "", args...)
		if code != 0 {
			t.Fatalf("apr %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := ok("import", dir, "-o", p("m.apr"), "--fuse-qkv"); out != p("m.apr")+"\n" {
		t.Errorf("import stdout %q, want the output path", out)
	}
	ok("convert", dir, "--format", "gguf", "--quant", "Q4_0", "-o", p("q4_0.gguf"))
	ok("export", p("m.apr"), "--format", "gguf", "-o", p("f16.gguf"))
	ok("quantize", p("f16.gguf"), "--type", "q8_0", "-o", p("q8_0.gguf"))
	ok("export", p("m.apr"), "-o", p("hf"))
	ok("quantize", p("f16.gguf"), "--type", "q4_0", "-o", p("q4_0.apr"))
	ok("rosetta", "diff", p("q4_0.apr"), p("q4_0.gguf"), "--threshold", "0")
	if out := ok("run", p("m.apr"), "--temp", "0", "What is 2+2? Answer with just the number."); out != "4\n" {
		t.Errorf("run on the imported APR file: %q, want 4", out)
	}
	// Identical tensors: diff exits 0 even with --threshold 0.
	ok("rosetta", "diff", dir, p("hf"), "--threshold", "0")
	ok("rosetta", "diff", p("q8_0.gguf"), testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf"), "--threshold", "0")

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"quantize", p("f16.gguf"), "-o", p("x.gguf")}, "--type"},
		{[]string{"convert", dir, "-o", p("x.bin")}, "format"},
		{[]string{"convert", dir, "--format", "gguf", "--type", "q9_9", "-o", p("x.gguf")}, "unknown type"},
		{[]string{"convert", p("nope"), "-o", p("x.gguf")}, "nope"},
		{[]string{"rosetta", "diff", dir, p("q4_0.gguf"), "--threshold", "0"}, "differ"},
	}
	for _, c := range bad {
		code, _, errOut := apr(t, "", c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("apr %v: exit %d, stderr %q (want non-zero naming %q)", c.args, code, errOut, c.want)
		}
	}
	if _, err := os.Stat(p("x.gguf")); err == nil {
		t.Error("a refused conversion left x.gguf")
	}

	// compare-inference: the Q4_0 GGUF diverges (exit 1, a stage named),
	// the APR copy does not.
	prompt := "def fibonacci(n):"
	code, out, _ := apr(t, "", "rosetta", "compare-inference", dir, p("q4_0.gguf"), "--prompt", prompt, "--json")
	var r struct {
		FirstDivergence string `json:"first_divergence"`
		Stages          []any  `json:"stages"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output: %v", err)
	}
	if code != 1 || r.FirstDivergence == "" || len(r.Stages) != 7 {
		t.Errorf("Q4_0: exit %d, first divergence %q, %d stages", code, r.FirstDivergence, len(r.Stages))
	}
	code, out, _ = apr(t, "", "rosetta", "compare-inference", dir, p("m.apr"), "--prompt", prompt)
	if code != 0 || !strings.Contains(out, "no divergence") {
		t.Errorf("APR copy: exit %d, stdout %q", code, out)
	}
}
