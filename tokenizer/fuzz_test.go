package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzEncodeDecode checks, on the real Qwen2.5 tokenizer, that every id is
// in range, that streaming decode equals Decode, and for valid UTF-8:
// NFC(Decode(Encode(s))) == NFC(s). Normalisation runs on the text between
// added tokens, piece by piece, so the decoded text is only canonically
// equivalent to s in general; when s holds no added token it is exactly
// NFC(s).
func FuzzEncodeDecode(f *testing.F) {
	tok := qwen(f)
	for _, c := range loadCases(f) {
		f.Add(c.Text)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d", s, id)
			}
		}
		dec := tok.Decode(ids)
		d := tok.NewDecoder()
		var stream strings.Builder
		for _, id := range ids {
			chunk := d.Add(id)
			if !utf8.ValidString(chunk) {
				t.Fatalf("stream chunk %q is not valid UTF-8", chunk)
			}
			stream.WriteString(chunk)
		}
		stream.WriteString(d.Flush())
		if stream.String() != dec {
			t.Fatalf("stream %q != Decode %q", stream.String(), dec)
		}
		if !utf8.ValidString(s) {
			return
		}
		want := norm.NFC.String(s)
		if got := norm.NFC.String(dec); got != want {
			t.Fatalf("NFC(Decode(Encode(%q))) = %q, want %q", s, got, want)
		}
		if !tok.hasAddedToken(s) && dec != want {
			t.Fatalf("Decode(Encode(%q)) = %q, want NFC %q", s, dec, want)
		}
	})
}

// hasAddedToken reports whether s contains the content of any added token.
func (t *Tokenizer) hasAddedToken(s string) bool {
	for content := range t.added {
		if strings.Contains(s, content) {
			return true
		}
	}
	return false
}

// FuzzLoadTokenizerJSON feeds arbitrary bytes to the tokenizer.json parser
// and, when they parse, builds and runs the tokenizer: errors, never panics.
func FuzzLoadTokenizerJSON(f *testing.F) {
	seeds := []string{
		`{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`,
		`{"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "` +
			strings.NewReplacer(`\`, `\\`).Replace(patternQwen2) + `"}, "behavior": "Isolated"}, {"type": "ByteLevel", "use_regex": false}]},` +
			` "added_tokens": [{"id": 3, "content": "<s>", "special": true, "lstrip": true}], "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]], "ignore_merges": true}}`,
		`{"model": {"vocab": {}}}`,
		`{"model": null}`,
		`[]`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := SpecFromTokenizerJSON(data)
		if err != nil {
			return
		}
		tok, err := New(spec)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab ab", "a<s>b", "\xff\xfe", "héllo 123\n\n"} {
			ids := tok.Encode(s)
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("Encode(%q) gave id %d", s, id)
				}
			}
			_ = tok.Decode(ids)
		}
	})
}
