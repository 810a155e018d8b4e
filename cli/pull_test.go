package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apr-llm/apr/hub/hubtest"
	"github.com/apr-llm/apr/internal/testref"
)

const (
	question = "What is 2+2? Answer with just the number."
	stRepo   = "apr-test/qwen2-tiny-coder"
	ggufName = "hf://apr-test/qwen2-tiny-coder-GGUF/qwen2-tiny-coder-q4_k_m.gguf"
)

// fakeHub serves the shared tiny model (SafeTensors folder and Q4_K_M GGUF)
// and points the Hugging Face environment at it and at an empty cache.
func fakeHub(t *testing.T) (*hubtest.Server, string) {
	t.Helper()
	s := hubtest.New()
	t.Cleanup(s.Close)
	entries, err := os.ReadDir(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if err := s.AddFile(stRepo, en.Name(), filepath.Join(testref.ModelDir(t), en.Name())); err != nil {
			t.Fatal(err)
		}
	}
	gguf := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf")
	if err := s.AddFile("apr-test/qwen2-tiny-coder-GGUF", "qwen2-tiny-coder-q4_k_m.gguf", gguf); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	for k, v := range map[string]string{"HF_HOME": home, "HF_ENDPOINT": s.URL(), "HF_HUB_CACHE": "", "HUGGINGFACE_HUB_CACHE": "",
		"HF_TOKEN": "", "HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": ""} {
		t.Setenv(k, v)
	}
	return s, filepath.Join(home, "hub")
}

// TestPullThenRun: apr pull, then apr run NAME answers, for a SafeTensors
// model and a GGUF file; list shows both; rm deletes them.
func TestPullThenRun(t *testing.T) {
	_, cache := fakeHub(t)
	for _, name := range []string{stRepo, ggufName} {
		code, out, errOut := apr(t, "", "pull", name)
		if code != 0 {
			t.Fatalf("apr pull %s: exit %d: %s", name, code, errOut)
		}
		if !strings.HasPrefix(out, cache+string(filepath.Separator)) || strings.Count(out, "\n") != 1 {
			t.Errorf("apr pull %s printed %q, want the path in %s", name, out, cache)
		}
		if !strings.Contains(errOut, "pulling") || !strings.Contains(errOut, "done") {
			t.Errorf("apr pull %s: stderr %q lacks progress lines", name, errOut)
		}
		code, out, errOut = apr(t, "", "run", name, question, "--temperature", "0")
		if code != 0 || out != "4\n" {
			t.Fatalf("apr run %s: exit %d, stdout %q, stderr %s", name, code, out, errOut)
		}
	}
	code, out, errOut := apr(t, "", "tokenize", stRepo, "hello world")
	if code != 0 || out != "[14990,1879]\n" {
		t.Errorf("apr tokenize %s: exit %d, %q, %s", stRepo, code, out, errOut)
	}
	// Conversions take cached names too.
	converted := filepath.Join(t.TempDir(), "from-cache.gguf")
	if code, _, errOut := apr(t, "", "convert", stRepo, "--format", "gguf", "--type", "q8_0", "-o", converted); code != 0 {
		t.Errorf("apr convert %s: exit %d, %s", stRepo, code, errOut)
	} else if _, err := os.Stat(converted); err != nil {
		t.Errorf("apr convert %s wrote nothing: %v", stRepo, err)
	}
	code, out, _ = apr(t, "", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("apr list: exit %d:\n%s", code, out)
	}
	var folder int64
	entries, _ := os.ReadDir(testref.ModelDir(t))
	for _, en := range entries {
		info, err := en.Info()
		if err != nil {
			t.Fatal(err)
		}
		folder += info.Size()
	}
	for _, want := range [][]string{{"apr-test/qwen2-tiny-coder ", "safetensors", "BF16", humanBytes(folder)},
		{"apr-test/qwen2-tiny-coder-GGUF/qwen2-tiny-coder-q4_k_m.gguf", "gguf", "Q4_K_M", "27.3 MB"}} {
		if !containsAll(lineWith(out, want[0]), want) {
			t.Errorf("apr list lacks %q:\n%s", want, out)
		}
	}
	for _, name := range []string{stRepo, "apr-test/qwen2-tiny-coder-GGUF:Q4_K_M"} {
		if code, out, errOut := apr(t, "", "rm", name); code != 0 || !strings.HasPrefix(out, "deleted "+name) {
			t.Errorf("apr rm %s: exit %d, %q, %s", name, code, out, errOut)
		}
	}
	code, _, errOut = apr(t, "", "run", ggufName, question)
	if code == 0 || !strings.Contains(errOut, "apr pull") {
		t.Errorf("apr run after rm: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := apr(t, "", "rm", stRepo); code == 0 || !strings.Contains(errOut, "not in the cache") {
		t.Errorf("second apr rm: exit %d, %s", code, errOut)
	}
	if code, out, _ := apr(t, "", "list"); code != 0 || out != "" {
		t.Errorf("apr list of an empty cache: exit %d, %q", code, out)
	}
}

// lineWith is the line of s that starts with prefix.
func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestRunHandPlacedModel: a model laid out in the cache by hand (as
// Hugging Face's tools leave it) runs without a single request to the hub.
func TestRunHandPlacedModel(t *testing.T) {
	s, cache := fakeHub(t)
	commit := strings.Repeat("0123456789", 4)
	snap := filepath.Join(cache, "models--Someone--tiny", "snapshots", commit)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if err := os.Symlink(filepath.Join(testref.ModelDir(t), en.Name()), filepath.Join(snap, en.Name())); err != nil {
			t.Fatal(err)
		}
	}
	refs := filepath.Join(cache, "models--Someone--tiny", "refs")
	if err := os.MkdirAll(refs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(refs, "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := apr(t, "", "run", "Someone/tiny", question, "--temperature", "0")
	if code != 0 || out != "4\n" {
		t.Fatalf("apr run Someone/tiny: exit %d, %q, %s", code, out, errOut)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests to the hub", n)
	}
}

// TestPullOffline: with HF_HUB_OFFLINE=1, pull uses the cache and fails
// clearly on a miss, with no request either way.
func TestPullOffline(t *testing.T) {
	s, _ := fakeHub(t)
	if code, _, errOut := apr(t, "", "pull", ggufName); code != 0 {
		t.Fatalf("apr pull: %s", errOut)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	before := len(s.Requests())
	if code, out, errOut := apr(t, "", "pull", ggufName); code != 0 || !strings.HasSuffix(out, ".gguf\n") {
		t.Errorf("offline pull of a cached file: exit %d, %q, %s", code, out, errOut)
	}
	code, _, errOut := apr(t, "", "pull", stRepo)
	if code == 0 || !strings.Contains(errOut, "HF_HUB_OFFLINE") || !strings.Contains(errOut, "not in the cache") {
		t.Errorf("offline pull of a missing model: exit %d, %s", code, errOut)
	}
	if n := len(s.Requests()) - before; n != 0 {
		t.Errorf("%d requests in offline mode", n)
	}
}

func TestPullBadNames(t *testing.T) {
	fakeHub(t)
	tests := []struct{ name, want string }{
		{"nonexistent-short-name", "not a known short name"},
		{"nobody/nothing", "not found"},
		{"hf://x/../y", "bad repository name"},
	}
	for _, tt := range tests {
		code, out, errOut := apr(t, "", "pull", tt.name)
		if code == 0 || out != "" || !strings.Contains(errOut, tt.want) {
			t.Errorf("apr pull %s: exit %d, %q, %s; want an error with %q", tt.name, code, out, errOut, tt.want)
		}
	}
}

// TestPullTokenNotShown: the token reaches the hub and never the output.
func TestPullTokenNotShown(t *testing.T) {
	const token = "hf_cliSECRET42"
	s, _ := fakeHub(t)
	s.Token = token
	t.Setenv("HF_TOKEN", token)
	code, out, errOut := apr(t, "", "pull", ggufName)
	if code != 0 {
		t.Fatalf("apr pull with HF_TOKEN: %s", errOut)
	}
	t.Setenv("HF_TOKEN", "hf_wrongSECRET")
	code, out2, errOut2 := apr(t, "", "pull", stRepo)
	if code == 0 || !strings.Contains(errOut2, "HF_TOKEN") {
		t.Errorf("apr pull with a wrong token: exit %d, %s", code, errOut2)
	}
	for _, o := range []string{out, errOut, out2, errOut2} {
		if strings.Contains(o, "SECRET") {
			t.Errorf("a token is shown: %q", o)
		}
	}
}

// TestDownloadBars: on a terminal each file has its own line, redrawn in
// place, with bytes and a final state.
func TestDownloadBars(t *testing.T) {
	var buf strings.Builder
	b := newBars(&buf)
	b.Start("model.safetensors", 2000, 500)
	b.Start("config.json", 10, 10)
	b.Progress("model.safetensors", 1500)
	b.Done("model.safetensors", nil)
	b.Start("tokenizer.json", 100, 0)
	b.Done("tokenizer.json", errors.New("boom"))
	b.draw()
	b.stop()
	out := buf.String()
	i := strings.LastIndex(out, "\x1b[3A") // the last frame moves up over the 3 lines of the one before
	if i < 0 {
		t.Fatalf("no redraw in place: %q", out)
	}
	last := out[i:]
	for _, want := range []string{"model.safetensors: done (2.0 kB in ", "config.json: in the cache (10 B)", "tokenizer.json: failed: boom"} {
		if !strings.Contains(last, want) {
			t.Errorf("last frame lacks %q: %q", want, last)
		}
	}
}
