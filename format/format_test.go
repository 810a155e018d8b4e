package format

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/demo"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/internal/testref"
)

// TestGGUFTokenizerMatchesHF: the tokenizer built from GGUF metadata gives
// Hugging Face's ids for every case of tokenizer_cases.json (HF normalises
// to NFC; llama.cpp does not, and apr follows HF).
func TestGGUFTokenizerMatchesHF(t *testing.T) {
	cases := testref.TokenizerCases(t)
	paths := []string{
		testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf"),
		testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf"),
		demo.Name,
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			m, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for _, c := range cases {
				if got := m.Tokenizer.Encode(c.Text); !slices.Equal(got, c.IDs) {
					t.Errorf("Encode(%q) = %v, Hugging Face %v", c.Text, got, c.IDs)
				}
				if got := m.Tokenizer.Decode(c.IDs); got != c.Decoded {
					t.Errorf("Decode(%v) = %q, Hugging Face %q", c.IDs, got, c.Decoded)
				}
			}
		})
	}
}

// TestArchitectureFromMetadata: a GGUF under a hash-like name is still a
// Qwen2 chat model.
func TestArchitectureFromMetadata(t *testing.T) {
	src := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf")
	dst := filepath.Join(t.TempDir(), "c8490f8cd005ac4e.gguf")
	if err := os.Symlink(src, dst); err != nil {
		t.Fatal(err)
	}
	m, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config.Arch != "qwen2" || m.Format != "gguf" || !strings.Contains(m.Template.Source(), "<|im_start|>") {
		t.Fatalf("arch %q format %q, template %.40q", m.Config.Arch, m.Format, m.Template.Source())
	}
}

// copyModel makes a writable copy of the tiny HF model folder (large files
// linked), so a test can break one file.
func copyModel(t *testing.T) string {
	t.Helper()
	src := testref.ModelDir(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBadModelFolders: each broken folder gets one error naming the file
// and the problem.
func TestBadModelFolders(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   []string
	}{
		{"missing tokenizer", func(t *testing.T, dir string) {
			for _, f := range []string{"tokenizer.json", "vocab.json", "merges.txt"} {
				os.Remove(filepath.Join(dir, f))
			}
		}, []string{"tokenizer"}},
		{"config disagrees with shapes", func(t *testing.T, dir string) {
			replace(t, dir, "config.json", `"hidden_size": 128`, `"hidden_size": 256`)
		}, []string{"shape", "model.embed_tokens.weight"}},
		{"bad config json", func(t *testing.T, dir string) {
			replace(t, dir, "config.json", `{`, `[`)
		}, []string{"config.json"}},
		{"truncated weights", func(t *testing.T, dir string) {
			raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, "model.safetensors"))
			if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), raw[:len(raw)/2], 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.safetensors"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyModel(t)
			c.mutate(t, dir)
			m, err := Open(dir)
			if err == nil {
				// Shape disagreements surface when the engine binds weights.
				_, err = engine.New(m.Config, m.Tensors, engine.Options{Threads: 1})
				m.Close()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func replace(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(raw), old, new, 1)
	if s == string(raw) {
		t.Fatalf("%s: %q not found", file, old)
	}
	os.Remove(p)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk.bin")
	if err := os.WriteFile(junk, []byte("not a model at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/nonexistent/model.gguf", t.TempDir(), junk} {
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%q): error %v should name the path", p, err)
		}
	}
}

// TestDetect tells a folder, a GGUF file and an APR file apart by their
// contents (the file names say otherwise), and refuses other files, short
// files and missing paths with an error naming the path.
func TestDetect(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		path string
		want Kind // 0: an error
	}{
		{t.TempDir(), KindHF},
		{write("model.apr", "GGUF\x03\x00\x00\x00"), KindGGUF},
		{write("model.gguf", "APR\x00\x01"), KindAPR},
		{write("exact.bin", "GGUF"), KindGGUF},
		{write("short.gguf", "GG"), 0},
		{write("empty.gguf", ""), 0},
		{write("text.gguf", "not a model at all"), 0},
		{write("lower.gguf", "gguf\x03\x00\x00\x00"), 0},
		{filepath.Join(dir, "missing.gguf"), 0},
	}
	for _, c := range cases {
		got, err := Detect(c.path)
		if c.want == 0 {
			if err == nil || !strings.Contains(err.Error(), c.path) {
				t.Errorf("Detect(%q) = %v, %v: want an error naming the path", c.path, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Detect(%q) = %v, %v, want %v", c.path, got, err, c.want)
		}
	}
}
