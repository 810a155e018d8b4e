package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Known pre-tokenizer split patterns of tokenizer.json files.
const (
	patternQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// LoadDir loads the tokenizer of a Hugging Face model folder: tokenizer.json,
// or else vocab.json + merges.txt (with tokenizer_config.json's
// added_tokens_decoder). EOS and BOS come from tokenizer_config.json's
// eos_token and bos_token when it is present.
func LoadDir(dir string) (*Tokenizer, error) {
	spec, err := SpecFromDir(dir)
	if err != nil {
		return nil, err
	}
	t, err := New(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}

// SpecFromDir reads the Spec of a Hugging Face model folder (see LoadDir).
func SpecFromDir(dir string) (Spec, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return Spec{}, fmt.Errorf("tokenizer: %w", err)
		}
		cfg = nil
	}
	var spec Spec
	tjPath := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(tjPath)
	switch {
	case err == nil:
		spec, err = SpecFromTokenizerJSON(data)
		if err != nil {
			return Spec{}, fmt.Errorf("%s: %w", tjPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		vocabPath := filepath.Join(dir, "vocab.json")
		mergesPath := filepath.Join(dir, "merges.txt")
		vocab, err := os.ReadFile(vocabPath)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Spec{}, fmt.Errorf("tokenizer: %s has neither tokenizer.json nor vocab.json", dir)
			}
			return Spec{}, fmt.Errorf("tokenizer: %w", err)
		}
		merges, err := os.ReadFile(mergesPath)
		if err != nil {
			return Spec{}, fmt.Errorf("tokenizer: %s has vocab.json but no readable merges.txt: %w", dir, err)
		}
		spec, err = SpecFromVocabMerges(vocab, merges)
		if err != nil {
			return Spec{}, fmt.Errorf("%s: %w", dir, err)
		}
		if cfg == nil {
			break
		}
		if err := applySlowConfig(&spec, cfg); err != nil {
			return Spec{}, fmt.Errorf("%s: %w", cfgPath, err)
		}
	default:
		return Spec{}, fmt.Errorf("tokenizer: %w", err)
	}
	if cfg != nil {
		if err := applyConfig(&spec, cfg); err != nil {
			return Spec{}, fmt.Errorf("%s: %w", cfgPath, err)
		}
	}
	return spec, nil
}

type jsonAddedToken struct {
	ID         *int   `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

func (a jsonAddedToken) toAdded(id int) AddedToken {
	normalized := !a.Special // Hugging Face's default
	if a.Normalized != nil {
		normalized = *a.Normalized
	}
	return AddedToken{ID: id, Content: a.Content, Special: a.Special, LStrip: a.LStrip,
		RStrip: a.RStrip, SingleWord: a.SingleWord, Normalized: normalized}
}

type jsonComponent struct {
	Type           string          `json:"type"`
	Normalizers    []jsonComponent `json:"normalizers"`
	Pretokenizers  []jsonComponent `json:"pretokenizers"`
	Processors     []jsonComponent `json:"processors"`
	Decoders       []jsonComponent `json:"decoders"`
	Pattern        json.RawMessage `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Single         []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

type tokenizerJSON struct {
	AddedTokens   []jsonAddedToken `json:"added_tokens"`
	Normalizer    *jsonComponent   `json:"normalizer"`
	PreTokenizer  *jsonComponent   `json:"pre_tokenizer"`
	PostProcessor *jsonComponent   `json:"post_processor"`
	Decoder       *jsonComponent   `json:"decoder"`
	Model         *struct {
		Type                    string          `json:"type"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		Dropout                 *float64        `json:"dropout"`
		ContinuingSubwordPrefix string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         string          `json:"end_of_word_suffix"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
	} `json:"model"`
}

// SpecFromTokenizerJSON builds a Spec from a Hugging Face tokenizer.json
// holding a byte-level BPE model. Merges may be "a b" strings or ["a", "b"]
// pairs. Added tokens missing from the vocabulary fill their ids in Tokens.
// BOS is -1 and EOS empty: tokenizer.json does not name them.
func SpecFromTokenizerJSON(data []byte) (Spec, error) {
	var tj tokenizerJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return Spec{}, fmt.Errorf("tokenizer.json: %w", err)
	}
	m := tj.Model
	if m == nil {
		return Spec{}, errors.New("tokenizer.json: no model")
	}
	if m.Type != "BPE" && m.Type != "" {
		return Spec{}, fmt.Errorf("tokenizer.json: model type %q is not BPE", m.Type)
	}
	switch {
	case m.Dropout != nil && *m.Dropout != 0:
		return Spec{}, errors.New("tokenizer.json: BPE dropout is not supported")
	case m.ContinuingSubwordPrefix != "" || m.EndOfWordSuffix != "":
		return Spec{}, errors.New("tokenizer.json: continuing_subword_prefix/end_of_word_suffix are not supported")
	case m.ByteFallback:
		return Spec{}, errors.New("tokenizer.json: byte_fallback is not supported (not a byte-level BPE)")
	}
	spec := Spec{BOS: -1, IgnoreMerges: m.IgnoreMerges}
	var err error
	if spec.NFC, err = parseNormalizer(tj.Normalizer); err != nil {
		return Spec{}, err
	}
	if spec.Pre, err = parsePreTokenizer(tj.PreTokenizer); err != nil {
		return Spec{}, err
	}
	if d := tj.Decoder; d != nil && d.Type != "ByteLevel" {
		return Spec{}, fmt.Errorf("tokenizer.json: decoder %q is not ByteLevel", d.Type)
	}
	added := make([]AddedToken, 0, len(tj.AddedTokens))
	for i, a := range tj.AddedTokens {
		if a.ID == nil {
			return Spec{}, fmt.Errorf("tokenizer.json: added token %d (%q) has no id", i, a.Content)
		}
		added = append(added, a.toAdded(*a.ID))
	}
	spec.Tokens, err = buildTokens(m.Vocab, added)
	if err != nil {
		return Spec{}, fmt.Errorf("tokenizer.json: %w", err)
	}
	spec.Added = added
	if spec.Merges, err = parseMerges(m.Merges); err != nil {
		return Spec{}, fmt.Errorf("tokenizer.json: %w", err)
	}
	if bos, ok := templateBOS(tj.PostProcessor); ok {
		spec.BOS, spec.AddBOS = bos, true
	}
	return spec, nil
}

// parseMerges reads model.merges: a list of "a b" strings (tried first, the
// fast common case) or of ["a", "b"] pairs, or a mix.
func parseMerges(raw json.RawMessage) ([]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		return strs, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	out := make([]string, len(items))
	for i, it := range items {
		var err error
		if out[i], err = parseMerge(it); err != nil {
			return nil, fmt.Errorf("merge %d: %w", i, err)
		}
	}
	return out, nil
}

// parseMerge accepts "a b" or ["a", "b"].
func parseMerge(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil {
			return "", err
		}
		if len(pair) != 2 {
			return "", fmt.Errorf("%d tokens, want 2", len(pair))
		}
		if strings.Contains(pair[0], " ") || strings.Contains(pair[1], " ") {
			return "", fmt.Errorf("token with a space in %q is not supported", pair)
		}
		return pair[0] + " " + pair[1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

func parseNormalizer(n *jsonComponent) (nfc bool, err error) {
	if n == nil {
		return false, nil
	}
	switch n.Type {
	case "NFC":
		return true, nil
	case "Sequence":
		for i := range n.Normalizers {
			sub, err := parseNormalizer(&n.Normalizers[i])
			if err != nil {
				return false, err
			}
			nfc = nfc || sub
		}
		return nfc, nil
	}
	return false, fmt.Errorf("tokenizer.json: normalizer %q is not supported", n.Type)
}

func parsePreTokenizer(p *jsonComponent) (string, error) {
	if p == nil {
		return "", errors.New("tokenizer.json: no pre_tokenizer (byte-level BPE needs ByteLevel)")
	}
	byteLevel := func(c *jsonComponent, wantRegex bool) error {
		if c.Type != "ByteLevel" {
			return fmt.Errorf("tokenizer.json: pre-tokenizer %q is not supported", c.Type)
		}
		if c.AddPrefixSpace {
			return errors.New("tokenizer.json: ByteLevel add_prefix_space is not supported")
		}
		useRegex := c.UseRegex == nil || *c.UseRegex
		if useRegex != wantRegex {
			return fmt.Errorf("tokenizer.json: ByteLevel use_regex=%v is not supported here", useRegex)
		}
		return nil
	}
	switch p.Type {
	case "ByteLevel":
		if err := byteLevel(p, true); err != nil {
			return "", err
		}
		return "gpt2", nil
	case "Sequence":
		if len(p.Pretokenizers) != 2 {
			return "", fmt.Errorf("tokenizer.json: pre-tokenizer sequence of %d is not supported", len(p.Pretokenizers))
		}
		sp := &p.Pretokenizers[0]
		if sp.Type != "Split" || sp.Invert || sp.Behavior != "Isolated" {
			return "", fmt.Errorf("tokenizer.json: pre-tokenizer %q (behavior %q) is not supported", sp.Type, sp.Behavior)
		}
		var pat struct{ Regex string }
		if err := json.Unmarshal(sp.Pattern, &pat); err != nil {
			return "", fmt.Errorf("tokenizer.json: split pattern: %w", err)
		}
		var pre string
		switch pat.Regex {
		case patternQwen2:
			pre = "qwen2"
		case patternLlama3:
			pre = "llama3"
		case patternGPT2:
			pre = "gpt2"
		default:
			return "", fmt.Errorf("tokenizer.json: split regex %q is not supported", pat.Regex)
		}
		if err := byteLevel(&p.Pretokenizers[1], false); err != nil {
			return "", err
		}
		return pre, nil
	}
	return "", fmt.Errorf("tokenizer.json: pre-tokenizer %q is not supported", p.Type)
}

// templateBOS finds a TemplateProcessing post-processor that puts a special
// token first (LLaMA-3 style BOS).
func templateBOS(p *jsonComponent) (int, bool) {
	if p == nil {
		return 0, false
	}
	if p.Type == "Sequence" {
		for i := range p.Processors {
			if id, ok := templateBOS(&p.Processors[i]); ok {
				return id, true
			}
		}
		return 0, false
	}
	if p.Type != "TemplateProcessing" || len(p.Single) == 0 || p.Single[0].SpecialToken == nil {
		return 0, false
	}
	st, ok := p.SpecialTokens[p.Single[0].SpecialToken.ID]
	if !ok || len(st.IDs) != 1 {
		return 0, false
	}
	return st.IDs[0], true
}

// maxTokens bounds vocabularies read from files (ids index a slice).
const maxTokens = 1 << 21

// buildTokens lays a vocabulary map and added tokens out by id.
func buildTokens(vocab map[string]int, added []AddedToken) ([]string, error) {
	if len(vocab) == 0 {
		return nil, errors.New("empty vocabulary")
	}
	n := 0
	for s, id := range vocab {
		if id < 0 || id >= maxTokens {
			return nil, fmt.Errorf("token %q has id %d out of range", s, id)
		}
		n = max(n, id+1)
	}
	for _, a := range added {
		if a.ID < 0 || a.ID >= maxTokens {
			return nil, fmt.Errorf("added token %q has id %d out of range", a.Content, a.ID)
		}
		n = max(n, a.ID+1)
	}
	tokens := make([]string, n)
	for s, id := range vocab {
		if tokens[id] != "" {
			return nil, fmt.Errorf("tokens %q and %q share id %d", tokens[id], s, id)
		}
		tokens[id] = s
	}
	for _, a := range added {
		if cur := tokens[a.ID]; cur != "" && cur != a.Content {
			if id, ok := vocab[a.Content]; !ok || id != a.ID {
				return nil, fmt.Errorf("added token %q has id %d, which the vocabulary gives to %q", a.Content, a.ID, cur)
			}
		}
		if id, ok := vocab[a.Content]; ok && id != a.ID {
			return nil, fmt.Errorf("added token %q has id %d but the vocabulary gives it %d", a.Content, a.ID, id)
		}
		tokens[a.ID] = a.Content
	}
	return tokens, nil
}

// SpecFromVocabMerges builds a Spec from GPT-2 style vocab.json and
// merges.txt. Without tokenizer_config.json it is GPT-2's split without NFC;
// LoadDir adjusts it from tokenizer_config.json's tokenizer_class.
func SpecFromVocabMerges(vocabJSON, mergesTxt []byte) (Spec, error) {
	var vocab map[string]int
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return Spec{}, fmt.Errorf("vocab.json: %w", err)
	}
	tokens, err := buildTokens(vocab, nil)
	if err != nil {
		return Spec{}, fmt.Errorf("vocab.json: %w", err)
	}
	var merges []string
	sc := bufio.NewScanner(bytes.NewReader(mergesTxt))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if (line == 1 && strings.HasPrefix(s, "#version")) || s == "" {
			continue
		}
		merges = append(merges, s)
	}
	if err := sc.Err(); err != nil {
		return Spec{}, fmt.Errorf("merges.txt: line %d: %w", line, err)
	}
	return Spec{Tokens: tokens, Merges: merges, Pre: "gpt2", BOS: -1}, nil
}

// applySlowConfig completes a vocab.json + merges.txt Spec from
// tokenizer_config.json: the split and normalisation from tokenizer_class,
// and the added tokens of added_tokens_decoder.
func applySlowConfig(spec *Spec, cfg []byte) error {
	var c struct {
		TokenizerClass     string                    `json:"tokenizer_class"`
		AddedTokensDecoder map[string]jsonAddedToken `json:"added_tokens_decoder"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	switch strings.TrimSuffix(c.TokenizerClass, "Fast") {
	case "Qwen2Tokenizer":
		spec.Pre, spec.NFC = "qwen2", true
	case "GPT2Tokenizer", "":
		spec.Pre, spec.NFC = "gpt2", false
	default:
		return fmt.Errorf("tokenizer_class %q needs tokenizer.json", c.TokenizerClass)
	}
	added := make([]AddedToken, 0, len(c.AddedTokensDecoder))
	maxID := len(spec.Tokens) - 1
	for key, a := range c.AddedTokensDecoder {
		id, err := strconv.Atoi(key)
		if err != nil || id < 0 || id >= maxTokens {
			return fmt.Errorf("added_tokens_decoder key %q is not a token id", key)
		}
		added = append(added, a.toAdded(id))
		maxID = max(maxID, id)
	}
	sortAdded(added)
	for len(spec.Tokens) <= maxID {
		spec.Tokens = append(spec.Tokens, "")
	}
	for _, a := range added {
		if cur := spec.Tokens[a.ID]; cur != "" && cur != a.Content {
			return fmt.Errorf("added token %q has id %d, which vocab.json gives to %q", a.Content, a.ID, cur)
		}
		spec.Tokens[a.ID] = a.Content
	}
	spec.Added = added
	return nil
}

func sortAdded(a []AddedToken) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].ID < a[j-1].ID; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// applyConfig takes EOS, BOS and add_bos_token from tokenizer_config.json.
func applyConfig(spec *Spec, cfg []byte) error {
	var c struct {
		EOS    json.RawMessage `json:"eos_token"`
		BOS    json.RawMessage `json:"bos_token"`
		AddBOS *bool           `json:"add_bos_token"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	lookup := func(name string, raw json.RawMessage) (int, bool, error) {
		content, err := tokenContent(raw)
		if err != nil || content == "" {
			return 0, false, err
		}
		for _, a := range spec.Added {
			if a.Content == content {
				return a.ID, true, nil
			}
		}
		for id, s := range spec.Tokens {
			if s == content {
				return id, true, nil
			}
		}
		return 0, false, fmt.Errorf("%s %q is not a token", name, content)
	}
	id, ok, err := lookup("eos_token", c.EOS)
	if err != nil {
		return err
	}
	if ok {
		spec.EOS = []int{id}
	}
	if id, ok, err = lookup("bos_token", c.BOS); err != nil {
		return err
	}
	if ok {
		spec.BOS = id
	}
	if c.AddBOS != nil {
		spec.AddBOS = *c.AddBOS && spec.BOS >= 0
	}
	return nil
}

// tokenContent reads a special token given as a string, null, or an
// AddedToken object with "content".
func tokenContent(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var obj struct {
		Content string `json:"content"`
	}
	err := json.Unmarshal(raw, &obj)
	return obj.Content, err
}
