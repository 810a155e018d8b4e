package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is a byte-level BPE tokenizer built from a Spec. It is safe for
// concurrent use.
type Tokenizer struct {
	tokens       []string         // id -> spelling (byte-level, or added content)
	tokBytes     [][]byte         // id -> raw bytes emitted when decoding
	vocab        map[string]int32 // model vocabulary: spelling -> id
	added        map[string]int   // added token content -> id
	special      []bool           // id -> special added token
	byteID       [256]int32       // single-byte token of each byte, -1 if none
	merges       map[uint64]merge // (left, right) -> merge
	ignoreMerges bool
	nfc          bool
	split        func(string, func(string))
	raw          *addedMatcher // added tokens matched before normalisation
	normalized   *addedMatcher // added tokens matched after it
	bos          int
	eos          []int
	addBOS       bool
	cache        *wordCache
}

// New builds a tokenizer from spec, checking it: ids in range, no duplicate
// added ids or contents, merges naming known tokens whose concatenation is a
// token, a known pre-tokenizer.
func New(spec Spec) (*Tokenizer, error) {
	initClasses()
	n := len(spec.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer: empty vocabulary")
	}
	t := &Tokenizer{
		tokens:       append([]string(nil), spec.Tokens...),
		tokBytes:     make([][]byte, n),
		vocab:        make(map[string]int32, n),
		added:        make(map[string]int, len(spec.Added)),
		special:      make([]bool, n),
		merges:       make(map[uint64]merge, len(spec.Merges)),
		ignoreMerges: spec.IgnoreMerges,
		nfc:          spec.NFC,
		bos:          spec.BOS,
		eos:          append([]int(nil), spec.EOS...),
		addBOS:       spec.AddBOS,
		cache:        newWordCache(),
	}
	switch spec.Pre {
	case "", "qwen2":
		t.split = func(s string, emit func(string)) { splitLlama(s, 1, emit) }
	case "llama3", "llama-bpe": // llama-bpe: llama.cpp's name in GGUF
		t.split = func(s string, emit func(string)) { splitLlama(s, 3, emit) }
	case "gpt2", "gpt-2":
		t.split = splitGPT2
	default:
		return nil, fmt.Errorf("tokenizer: unsupported pre-tokenizer %q (want qwen2, llama3 or gpt2)", spec.Pre)
	}

	isAdded := make([]bool, n)
	var rawToks, normToks []AddedToken
	for _, a := range spec.Added {
		if a.ID < 0 || a.ID >= n {
			return nil, fmt.Errorf("tokenizer: added token %q has id %d outside the vocabulary [0, %d)", a.Content, a.ID, n)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("tokenizer: added token %d has empty content", a.ID)
		}
		if isAdded[a.ID] {
			return nil, fmt.Errorf("tokenizer: duplicate added token id %d (%q)", a.ID, a.Content)
		}
		if prev, ok := t.added[a.Content]; ok {
			return nil, fmt.Errorf("tokenizer: added token %q has two ids, %d and %d", a.Content, prev, a.ID)
		}
		if !utf8.ValidString(a.Content) {
			return nil, fmt.Errorf("tokenizer: added token %d is not valid UTF-8", a.ID)
		}
		isAdded[a.ID] = true
		t.added[a.Content] = a.ID
		t.special[a.ID] = a.Special
		t.tokBytes[a.ID] = byteLevelDecode(a.Content)
		if a.Normalized {
			if spec.NFC {
				a.Content = norm.NFC.String(a.Content)
			}
			normToks = append(normToks, a)
		} else {
			rawToks = append(rawToks, a)
		}
	}
	t.raw = newAddedMatcher(rawToks)
	t.normalized = newAddedMatcher(normToks)

	for id, s := range spec.Tokens {
		if s == "" {
			continue
		}
		if !isAdded[id] {
			t.tokBytes[id] = byteLevelDecode(s)
		}
		if _, dup := t.vocab[s]; !dup {
			t.vocab[s] = int32(id)
		}
	}
	for b := range t.byteID {
		t.byteID[b] = -1
		if id, ok := t.vocab[byteToString[b]]; ok {
			t.byteID[b] = id
		}
	}
	for rank, m := range spec.Merges {
		left, right, ok := strings.Cut(m, " ")
		if !ok || left == "" || right == "" || strings.Contains(right, " ") {
			return nil, fmt.Errorf("tokenizer: merge %d %q is not two tokens separated by one space", rank, m)
		}
		a, okA := t.vocab[left]
		b, okB := t.vocab[right]
		if !okA || !okB {
			return nil, fmt.Errorf("tokenizer: merge %d %q names a token missing from the vocabulary", rank, m)
		}
		c, ok := t.vocab[left+right]
		if !ok {
			return nil, fmt.Errorf("tokenizer: merge %d %q makes %q, missing from the vocabulary", rank, m, left+right)
		}
		// A repeated pair keeps its last rank, as Hugging Face's merge map does.
		t.merges[pairKey(a, b)] = merge{rank: int32(rank), id: c}
	}
	if spec.BOS < -1 || spec.BOS >= n {
		return nil, fmt.Errorf("tokenizer: BOS id %d outside the vocabulary [0, %d)", spec.BOS, n)
	}
	for _, id := range spec.EOS {
		if id < 0 || id >= n {
			return nil, fmt.Errorf("tokenizer: EOS id %d outside the vocabulary [0, %d)", id, n)
		}
	}
	return t, nil
}

// VocabSize is the number of ids, max id + 1 over the vocabulary and added
// tokens (Qwen2.5: 151,665; the model's embedding may be padded past it).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// BOS is the beginning-of-sequence id, -1 when the model has none.
func (t *Tokenizer) BOS() int { return t.bos }

// AddBOS reports whether the model expects BOS before a prompt. Encode never
// adds it.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// EOS returns the end-of-sequence ids known to the tokenizer (a copy).
func (t *Tokenizer) EOS() []int { return append([]int(nil), t.eos...) }

// TokenString is the vocabulary spelling of id, as Hugging Face's
// id_to_token gives it: byte-level for BPE tokens ("Ġworld"), the content for
// added tokens. It is "" for unknown or unused ids.
func (t *Tokenizer) TokenString(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenBytes is the raw bytes id decodes to (nil for unknown ids). A token
// may hold part of a UTF-8 sequence. The slice must not be modified.
func (t *Tokenizer) TokenBytes(id int) []byte {
	if id < 0 || id >= len(t.tokBytes) {
		return nil
	}
	return t.tokBytes[id]
}

// TokenID looks s up among added tokens, then in the vocabulary (byte-level
// spelling), as Hugging Face's token_to_id does.
func (t *Tokenizer) TokenID(s string) (int, bool) {
	if id, ok := t.added[s]; ok {
		return id, true
	}
	if id, ok := t.vocab[s]; ok {
		return int(id), true
	}
	return 0, false
}

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// Decode turns ids into text as Hugging Face's decode does with
// skip_special_tokens=false: token bytes are concatenated and invalid UTF-8
// becomes U+FFFD. Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	n := 0
	for _, id := range ids {
		if id >= 0 && id < len(t.tokBytes) {
			n += len(t.tokBytes[id])
		}
	}
	buf := make([]byte, 0, n)
	for _, id := range ids {
		if id >= 0 && id < len(t.tokBytes) {
			buf = append(buf, t.tokBytes[id]...)
		}
	}
	if utf8.Valid(buf) {
		return string(buf)
	}
	out, _ := appendLossy(make([]byte, 0, n+16), buf, true)
	return string(out)
}

// Encode turns text into ids exactly as Hugging Face's tokenizer does with
// add_special_tokens=false: added tokens written in the text are matched
// first, the text between them is normalised, split and merged. Invalid UTF-8
// bytes are encoded as their own bytes.
func (t *Tokenizer) Encode(text string) []int {
	ids := make([]int, 0, len(text)/3+1)
	t.raw.split(text, func(seg string, id int) {
		if id >= 0 {
			ids = append(ids, id)
			return
		}
		if t.nfc {
			seg = norm.NFC.String(seg)
		}
		t.normalized.split(seg, func(seg string, id int) {
			if id >= 0 {
				ids = append(ids, id)
				return
			}
			t.split(seg, func(word string) { ids = t.encodeWord(ids, word) })
		})
	})
	return ids
}

// encodeWord appends the ids of one pre-token, through the cache.
func (t *Tokenizer) encodeWord(dst []int, word string) []int {
	if len(word) == 1 && !t.ignoreMerges {
		if id := t.byteID[word[0]]; id >= 0 {
			return append(dst, int(id))
		}
		return dst
	}
	if len(word) > cacheMaxWordLen {
		return t.bpeWord(dst, word)
	}
	if ids, ok := t.cache.get(word); ok {
		for _, id := range ids {
			dst = append(dst, int(id))
		}
		return dst
	}
	start := len(dst)
	dst = t.bpeWord(dst, word)
	ids := make([]int32, len(dst)-start)
	for i, id := range dst[start:] {
		ids[i] = int32(id)
	}
	t.cache.put(strings.Clone(word), ids)
	return dst
}

// addedMatcher finds added tokens in text with Hugging Face's rules:
// leftmost-longest non-overlapping matches, then single_word, lstrip and
// rstrip applied to each.
type addedMatcher struct {
	first   [256][]AddedToken // candidates by first byte, longest first
	any     bool
	oneByte int // the only first byte when all tokens share one, else -1
}

func newAddedMatcher(toks []AddedToken) *addedMatcher {
	m := &addedMatcher{oneByte: -1}
	for _, a := range toks {
		b := a.Content[0]
		m.first[b] = append(m.first[b], a)
		if !m.any {
			m.oneByte = int(b)
		} else if m.oneByte != int(b) {
			m.oneByte = -1
		}
		m.any = true
	}
	for b := range m.first {
		c := m.first[b]
		sort.SliceStable(c, func(i, j int) bool { return len(c[i].Content) > len(c[j].Content) })
	}
	return m
}

// match returns the longest token at s[i:], if any.
func (m *addedMatcher) match(s string, i int) (AddedToken, bool) {
	for _, a := range m.first[s[i]] {
		if strings.HasPrefix(s[i:], a.Content) {
			return a, true
		}
	}
	return AddedToken{}, false
}

// split calls emit for the pieces of s in order: text between tokens with
// id -1, and each token (with the spaces it strips) with its id.
func (m *addedMatcher) split(s string, emit func(string, int)) {
	if !m.any {
		if s != "" {
			emit(s, -1)
		}
		return
	}
	startOffset := 0
	i := 0
	for i < len(s) {
		if m.oneByte >= 0 {
			k := strings.IndexByte(s[i:], byte(m.oneByte))
			if k < 0 {
				break
			}
			i += k
		}
		a, ok := m.match(s, i)
		if !ok {
			i++
			continue
		}
		start, stop := i, i+len(a.Content)
		i = stop
		if a.SingleWord {
			if (start > 0 && endsWithWord(s[:start])) || (stop < len(s) && startsWithWord(s[stop:])) {
				continue
			}
		}
		if a.LStrip {
			start = max(len(strings.TrimRightFunc(s[:start], unicode.IsSpace)), startOffset)
		}
		if a.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			emit(s[startOffset:start], -1)
		}
		// start can pass stop only when a token lies inside the spaces that
		// the previous one's rstrip took; Hugging Face still emits its id.
		emit(s[min(start, stop):stop], a.ID)
		startOffset = stop
	}
	if startOffset < len(s) {
		emit(s[startOffset:], -1)
	}
}

// isWordRune is Rust regex's Unicode \w.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) ||
		unicode.Is(unicode.Other_Alphabetic, r) || unicode.Is(unicode.Join_Control, r)
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordRune(r)
}
