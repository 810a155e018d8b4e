package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/apr-llm/apr/internal/testref"
)

var (
	qwenOnce sync.Once
	qwenTok  *Tokenizer
	qwenErr  error
)

// qwen loads the shared Qwen2.5 tokenizer once per test process.
func qwen(t testing.TB) *Tokenizer {
	t.Helper()
	dir := testref.ModelDir(t)
	qwenOnce.Do(func() { qwenTok, qwenErr = LoadDir(dir) })
	if qwenErr != nil {
		t.Fatalf("LoadDir: %v", qwenErr)
	}
	return qwenTok
}

// The shared reference files, read through testref (one loader for every
// package).
type (
	tokCase = testref.TokenizerCase
	prompt  = testref.Prompt
)

func loadCases(t testing.TB) []tokCase { return testref.TokenizerCases(t) }

func loadPrompts(t testing.TB) []prompt { return testref.HFOutputs(t) }

func checkReference(t *testing.T, tok *Tokenizer) {
	for i, c := range loadCases(t) {
		got := tok.Encode(c.Text)
		if !reflect.DeepEqual(got, c.IDs) && !(len(got) == 0 && len(c.IDs) == 0) {
			t.Errorf("case %d Encode(%q) = %v, want %v", i, c.Text, got, c.IDs)
		}
		if dec := tok.Decode(c.IDs); dec != c.Decoded {
			t.Errorf("case %d Decode(%v) = %q, want %q", i, c.IDs, dec, c.Decoded)
		}
	}
	for _, p := range loadPrompts(t) {
		got := tok.Encode(p.Text)
		if !reflect.DeepEqual(got, p.TokenIDs) {
			t.Errorf("prompt %s: Encode = %v, want %v", p.Name, got, p.TokenIDs)
		}
		if dec := tok.Decode(p.TokenIDs); dec != p.Text {
			t.Errorf("prompt %s: Decode = %q, want %q", p.Name, dec, p.Text)
		}
	}
}

func TestReferenceTokenizerJSON(t *testing.T) {
	checkReference(t, qwen(t))
}

func TestReferenceVocabMerges(t *testing.T) {
	src := testref.ModelDir(t)
	dir := t.TempDir()
	for _, name := range []string{"vocab.json", "merges.txt", "tokenizer_config.json"} {
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir(vocab.json+merges.txt): %v", err)
	}
	ref := qwen(t)
	if tok.VocabSize() != ref.VocabSize() {
		t.Errorf("VocabSize = %d, tokenizer.json gives %d", tok.VocabSize(), ref.VocabSize())
	}
	if !reflect.DeepEqual(tok.EOS(), ref.EOS()) || tok.BOS() != ref.BOS() {
		t.Errorf("EOS/BOS = %v/%d, tokenizer.json gives %v/%d", tok.EOS(), tok.BOS(), ref.EOS(), ref.BOS())
	}
	for id := 151643; id < ref.VocabSize(); id++ {
		if tok.IsSpecial(id) != ref.IsSpecial(id) || tok.TokenString(id) != ref.TokenString(id) {
			t.Errorf("added token %d: %q special=%v, tokenizer.json gives %q special=%v",
				id, tok.TokenString(id), tok.IsSpecial(id), ref.TokenString(id), ref.IsSpecial(id))
		}
	}
	checkReference(t, tok)
}

func TestAccessors(t *testing.T) {
	tok := qwen(t)
	if got := tok.VocabSize(); got != 151665 {
		t.Errorf("VocabSize = %d, want 151665", got)
	}
	if got := tok.EOS(); !reflect.DeepEqual(got, []int{151645}) {
		t.Errorf("EOS = %v, want [151645]", got)
	}
	if got := tok.BOS(); got != -1 {
		t.Errorf("BOS = %d, want -1", got)
	}
	if tok.AddBOS() {
		t.Error("AddBOS = true, want false")
	}
	tests := []struct {
		s       string
		id      int
		special bool
	}{
		{"<|im_start|>", 151644, true},
		{"<|im_end|>", 151645, true},
		{"<|endoftext|>", 151643, true},
		{"<tool_call>", 151657, false},
		{"Ġworld", 1879, false},
		{"Hello", 9707, false},
	}
	for _, tc := range tests {
		id, ok := tok.TokenID(tc.s)
		if !ok || id != tc.id {
			t.Errorf("TokenID(%q) = %d, %v; want %d", tc.s, id, ok, tc.id)
		}
		if got := tok.TokenString(tc.id); got != tc.s {
			t.Errorf("TokenString(%d) = %q, want %q", tc.id, got, tc.s)
		}
		if got := tok.IsSpecial(tc.id); got != tc.special {
			t.Errorf("IsSpecial(%d) = %v, want %v", tc.id, got, tc.special)
		}
	}
	if _, ok := tok.TokenID("no such token"); ok {
		t.Error("TokenID of a missing token reported ok")
	}
	for _, id := range []int{-1, 151665, 151935, 1 << 30} {
		if tok.TokenString(id) != "" || tok.IsSpecial(id) || tok.TokenBytes(id) != nil {
			t.Errorf("id %d out of range answered", id)
		}
	}
	if got := tok.Decode([]int{9707, -5, 151900, 1879}); got != "Hello world" {
		t.Errorf("Decode skipping unknown ids = %q", got)
	}
}

func TestStreamDecoder(t *testing.T) {
	tok := qwen(t)
	texts := []string{
		"🌍🚀👨‍👩‍👧",
		"你好，世界",
		"emoji 😀 in text",
		"𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
		"नमस्ते <|im_end|>❤️",
		"½ ⅓ ² ①",
	}
	for _, c := range loadCases(t) {
		texts = append(texts, c.Text)
	}
	for _, text := range texts {
		ids := tok.Encode(text)
		d := tok.NewDecoder()
		var all string
		for _, id := range ids {
			chunk := d.Add(id)
			if !utf8.ValidString(chunk) {
				t.Errorf("%q: chunk %q is not valid UTF-8", text, chunk)
			}
			all += chunk
		}
		all += d.Flush()
		if want := tok.Decode(ids); all != want {
			t.Errorf("stream of %q = %q, want %q", text, all, want)
		}
	}
	// A sequence cut short comes out as one U+FFFD at Flush, as Decode does.
	d := tok.NewDecoder()
	emoji := tok.Encode("𝔘")
	if len(emoji) < 2 {
		t.Fatalf("𝔘 is one token; test needs a split sequence")
	}
	var got string
	for _, id := range emoji[:len(emoji)-1] {
		got += d.Add(id)
	}
	if got != "" {
		t.Errorf("incomplete emoji emitted %q", got)
	}
	if got := d.Flush(); got != tok.Decode(emoji[:len(emoji)-1]) || got != "\uFFFD" {
		t.Errorf("Flush of a cut emoji = %q", got)
	}
}

func TestLossyMatchesRust(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xF0\x9F\x98", "\uFFFD"},             // truncated 4-byte: one maximal subpart
		{"\xF0\x9F\x98a", "\uFFFDa"},           // same, then ASCII
		{"\x80\x80", "\uFFFD\uFFFD"},           // lone continuations
		{"\xED\xA0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate: E D then invalid second byte
		{"\xE0\x80", "\uFFFD\uFFFD"},
		{"\xC3\xA9\xC3", "é\uFFFD"},
		{"\xF4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	}
	for _, tc := range tests {
		got, n := appendLossy(nil, []byte(tc.in), true)
		if string(got) != tc.want || n != len(tc.in) {
			t.Errorf("lossy(%q) = %q (%d), want %q", tc.in, got, n, tc.want)
		}
	}
}

// TestHFRandomCases compares with Hugging Face tokenizers on 1,500 random
// strings that mix every character class the split regex tells apart
// (testdata/gen_hf_cases.js made them).
func TestHFRandomCases(t *testing.T) {
	tok := qwen(t)
	data, err := os.ReadFile(filepath.Join("testdata", "hf_random_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []tokCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 1000 {
		t.Fatalf("only %d cases", len(f.Cases))
	}
	fails := 0
	for i, c := range f.Cases {
		got := tok.Encode(c.Text)
		if !reflect.DeepEqual(got, c.IDs) {
			fails++
			if fails <= 20 {
				t.Errorf("case %d Encode(%q) = %v, want %v", i, c.Text, got, c.IDs)
			}
		}
		if dec := tok.Decode(c.IDs); dec != c.Decoded {
			t.Errorf("case %d Decode = %q, want %q", i, dec, c.Decoded)
		}
	}
	if fails > 0 {
		t.Errorf("%d of %d cases differ", fails, len(f.Cases))
	}
}

// TestHFAddedTokenOptions checks lstrip, rstrip, single_word and normalized
// added tokens against Hugging Face (testdata/gen_hf_cases.js).
func TestHFAddedTokenOptions(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "hf_added_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Added []jsonAddedToken `json:"added_tokens"`
		Cases []tokCase        `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(filepath.Join(testref.ModelDir(t), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := SpecFromTokenizerJSON(tj)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range f.Added {
		spec.Added = append(spec.Added, a.toAdded(*a.ID))
		for len(spec.Tokens) <= *a.ID {
			spec.Tokens = append(spec.Tokens, "")
		}
		spec.Tokens[*a.ID] = a.Content
	}
	tok, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 100 {
		t.Fatalf("only %d cases", len(f.Cases))
	}
	for i, c := range f.Cases {
		if got := tok.Encode(c.Text); !reflect.DeepEqual(got, c.IDs) {
			t.Errorf("case %d Encode(%q) = %v, want %v", i, c.Text, got, c.IDs)
		}
		if dec := tok.Decode(c.IDs); dec != c.Decoded {
			t.Errorf("case %d Decode = %q, want %q", i, dec, c.Decoded)
		}
	}
}

// TestConcurrentEncode runs Encode from several goroutines over a shared
// cache (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tok := qwen(t)
	cases := loadCases(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 3; r++ {
				for i, c := range cases {
					if got := tok.Encode(c.Text); !reflect.DeepEqual(got, c.IDs) && len(c.IDs) > 0 {
						t.Errorf("goroutine %d case %d: Encode = %v, want %v", g, i, got, c.IDs)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
