package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDirMissingFiles(t *testing.T) {
	empty := t.TempDir()
	if _, err := LoadDir(empty); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("LoadDir(empty) = %v, want an error naming tokenizer.json", err)
	}
	onlyVocab := t.TempDir()
	if err := os.WriteFile(filepath.Join(onlyVocab, "vocab.json"), []byte(`{"a":0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(onlyVocab); err == nil || !strings.Contains(err.Error(), "merges.txt") {
		t.Errorf("LoadDir(vocab.json only) = %v, want an error naming merges.txt", err)
	}
	if _, err := LoadDir(filepath.Join(empty, "nope")); err == nil {
		t.Error("LoadDir(missing dir) succeeded")
	}
}

func TestLoadDirBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // substring of the error
	}{
		{"truncated tokenizer.json", map[string]string{"tokenizer.json": `{"model": {"vocab": {"a": 0`}, "tokenizer.json"},
		{"not json", map[string]string{"tokenizer.json": `hello`}, "tokenizer.json"},
		{"no model", map[string]string{"tokenizer.json": `{}`}, "no model"},
		{"wordpiece", map[string]string{"tokenizer.json": `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`}, "not BPE"},
		{"vocab wrong type", map[string]string{"tokenizer.json": `{"model": {"type": "BPE", "vocab": ["a"]}}`}, "tokenizer.json"},
		{"no pre_tokenizer", map[string]string{"tokenizer.json": `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`}, "pre_tokenizer"},
		{"unknown regex", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}, {"type": "ByteLevel", "use_regex": false}]}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`}, "split regex"},
		{"negative id", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}`}, "out of range"},
		{"huge id", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 99999999999}, "merges": []}}`}, "out of range"},
		{"shared id", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}`}, "share id"},
		{"merge unknown", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}}`}, "missing from the vocabulary"},
		{"merge result unknown", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}`}, "makes"},
		{"merge bad shape", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}`}, "merge 0"},
		{"merges not a list", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": 5}}`}, "merges"},
		{"merge one word", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}`}, "merge 0"},
		{"added no id", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": [{"content": "<x>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`}, "no id"},
		{"added duplicate id", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": [{"id": 1, "content": "<x>"}, {"id": 1, "content": "<y>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`}, "id 1"},
		{"added empty", map[string]string{"tokenizer.json": `{"pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": [{"id": 1, "content": ""}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`}, "empty content"},
		{"bad normalizer", map[string]string{"tokenizer.json": `{"normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`}, "normalizer"},
		{"bad eos", map[string]string{
			"tokenizer.json":        `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`,
			"tokenizer_config.json": `{"eos_token": "</s>"}`,
		}, "tokenizer_config.json"},
		{"bad config", map[string]string{
			"tokenizer.json":        `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`,
			"tokenizer_config.json": `{"eos_token": 5`,
		}, "tokenizer_config.json"},
		{"bad vocab.json", map[string]string{"vocab.json": `{"a": "x"}`, "merges.txt": ""}, "vocab.json"},
		{"bad merges.txt", map[string]string{"vocab.json": `{"a": 0}`, "merges.txt": "#version: 0.2\na b\n"}, "merge 0"},
		{"bad added_tokens_decoder", map[string]string{
			"vocab.json": `{"a": 0}`, "merges.txt": "",
			"tokenizer_config.json": `{"added_tokens_decoder": {"x": {"content": "<x>"}}}`,
		}, "added_tokens_decoder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadDir(dir)
			if err == nil {
				t.Fatalf("LoadDir succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// tinySpec is a toy vocabulary: the 256 byte tokens plus "ab" and "abc".
func tinySpec() Spec {
	tokens := make([]string, 0, 260)
	for b := 0; b < 256; b++ {
		tokens = append(tokens, byteToString[b])
	}
	tokens = append(tokens, "ab", "abc", "<s>")
	return Spec{
		Tokens: tokens,
		Merges: []string{"a b", "ab c"},
		Added:  []AddedToken{{ID: 258, Content: "<s>", Special: true}},
		BOS:    258,
		EOS:    []int{258},
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"empty", func(s *Spec) { s.Tokens = nil }, "empty vocabulary"},
		{"pre", func(s *Spec) { s.Pre = "bert" }, "pre-tokenizer"},
		{"added range", func(s *Spec) { s.Added[0].ID = 999 }, "outside"},
		{"added negative", func(s *Spec) { s.Added[0].ID = -3 }, "outside"},
		{"added duplicate id", func(s *Spec) { s.Added = append(s.Added, AddedToken{ID: 258, Content: "<t>"}) }, "duplicate added token id"},
		{"added duplicate content", func(s *Spec) { s.Added = append(s.Added, AddedToken{ID: 257, Content: "<s>"}) }, "two ids"},
		{"added empty", func(s *Spec) { s.Added[0].Content = "" }, "empty content"},
		{"added invalid utf8", func(s *Spec) { s.Added[0].Content = "\xff" }, "UTF-8"},
		{"merge shape", func(s *Spec) { s.Merges = append(s.Merges, "abc") }, "two tokens"},
		{"merge three", func(s *Spec) { s.Merges = append(s.Merges, "a b c") }, "two tokens"},
		{"merge unknown", func(s *Spec) { s.Merges = append(s.Merges, "a zz") }, "missing"},
		{"merge result", func(s *Spec) { s.Merges = append(s.Merges, "b c") }, "makes"},
		{"bos", func(s *Spec) { s.BOS = 259 }, "BOS"},
		{"eos", func(s *Spec) { s.EOS = []int{-1} }, "EOS"},
	}
	if _, err := New(tinySpec()); err != nil {
		t.Fatalf("New(tinySpec) = %v", err)
	}
	for _, tc := range tests {
		spec := tinySpec()
		tc.change(&spec)
		_, err := New(spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestTinyTokenizer(t *testing.T) {
	for _, pre := range []string{"qwen2", "llama3", "gpt2"} {
		spec := tinySpec()
		spec.Pre = pre
		tok, err := New(spec)
		if err != nil {
			t.Fatal(err)
		}
		got := tok.Encode("abc<s>ab\xffa")
		want := []int{257, 258, 256, 0xff, 'a'}
		if len(got) != len(want) {
			t.Fatalf("%s: Encode = %v, want %v", pre, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: Encode = %v, want %v", pre, got, want)
			}
		}
		if dec := tok.Decode(got); dec != "abc<s>ab\uFFFDa" {
			t.Errorf("%s: Decode = %q", pre, dec)
		}
		if tok.BOS() != 258 || !tok.IsSpecial(258) || tok.IsSpecial(257) {
			t.Errorf("%s: BOS/IsSpecial wrong", pre)
		}
		// A long word takes the heap path; it must agree with the small one.
		long := strings.Repeat("abc", 50)
		ids := tok.Encode(long)
		if len(ids) != 50 || tok.Decode(ids) != long {
			t.Errorf("%s: long word gave %d ids", pre, len(ids))
		}
	}
}

func TestIgnoreMerges(t *testing.T) {
	spec := tinySpec()
	spec.Tokens = append(spec.Tokens, "bc") // reachable only as a whole word
	spec.IgnoreMerges = true
	tok, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("bc"); len(got) != 1 || got[0] != 259 {
		t.Errorf("ignore_merges Encode(bc) = %v, want [259]", got)
	}
	spec.IgnoreMerges = false
	if tok, err = New(spec); err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("bc"); len(got) != 2 {
		t.Errorf("Encode(bc) = %v, want two byte tokens", got)
	}
}

func TestHeapMatchesSmall(t *testing.T) {
	tok := qwen(t)
	words := []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababababababababababababab",
		"internationalizationinternationalization", "                                        ",
		"mississippimississippimississippimississippi", "🌍🚀👨‍👩‍👧🌍🚀👨‍👩‍👧"}
	for _, w := range words {
		var syms []int32
		for i := 0; i < len(w); i++ {
			syms = append(syms, tok.byteID[w[i]])
		}
		small := tok.mergeSmall(append([]int32(nil), syms...))
		heap := tok.mergeHeap(append([]int32(nil), syms...))
		if len(small) != len(heap) {
			t.Errorf("%q: small %v, heap %v", w, small, heap)
			continue
		}
		for i := range small {
			if small[i] != heap[i] {
				t.Errorf("%q: small %v, heap %v", w, small, heap)
				break
			}
		}
	}
}
