package gguf

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
	"github.com/apr-llm/apr/tokenizer"
)

// Config reads the model's hyperparameters from the metadata
// (general.architecture and the {arch}.* keys), never from the file name.
// The vocabulary size is {arch}.vocab_size, else the embedding's row count,
// else the token list's length. Embeddings are tied when there is no
// output.weight; attention biases are present when layer 0 has a Q bias.
func (f *File) Config() (*model.Config, error) {
	arch, err := f.String(KeyArchitecture)
	if err != nil {
		return nil, err
	}
	c := &model.Config{BOSTokenID: -1}
	switch arch {
	case "qwen2":
		c.Arch = model.ArchQwen2
	case "llama":
		c.Arch = model.ArchLlama
	default:
		return nil, fmt.Errorf("gguf: %s: %w: architecture %q is not supported (apr runs qwen2 and llama)", f.path, ErrInvalid, arch)
	}
	const big = 1 << 30
	req := func(dst *int, key string) {
		if err != nil {
			return
		}
		if !f.Has(arch + "." + key) {
			err = fmt.Errorf("gguf: %s: %s.%s: %w", f.path, arch, key, ErrNotFound)
			return
		}
		*dst, err = f.intOr(arch+"."+key, 0, big)
	}
	req(&c.NumLayers, "block_count")
	req(&c.HiddenSize, "embedding_length")
	req(&c.IntermediateSize, "feed_forward_length")
	req(&c.NumHeads, "attention.head_count")
	if err != nil {
		return nil, err
	}
	if c.NumKVHeads, err = f.intOr(arch+".attention.head_count_kv", c.NumHeads, big); err != nil {
		return nil, err
	}
	def := 0
	if c.NumHeads > 0 {
		def = c.HiddenSize / c.NumHeads
	}
	if c.HeadDim, err = f.intOr(arch+".attention.key_length", def, big); err != nil {
		return nil, err
	}
	if c.MaxPositions, err = f.intOr(arch+".context_length", 32768, big); err != nil {
		return nil, err
	}
	c.RopeTheta = 10000
	if f.Has(arch + ".rope.freq_base") {
		if c.RopeTheta, err = f.Float(arch + ".rope.freq_base"); err != nil {
			return nil, err
		}
	}
	c.RMSNormEps = 1e-6
	if f.Has(arch + ".attention.layer_norm_rms_epsilon") {
		eps, err := f.Float(arch + ".attention.layer_norm_rms_epsilon")
		if err != nil {
			return nil, err
		}
		// Stored as float32: 1e-6 arrives as 9.99999997e-07. Round to the
		// nearest float32-representable decimal so it equals config.json's.
		c.RMSNormEps = shortest32(eps)
	}

	if f.Has(arch + ".rope.scaling.type") {
		if st, err := f.String(arch + ".rope.scaling.type"); err != nil || (st != "none" && st != "") {
			return nil, fmt.Errorf("gguf: %s: %w: RoPE scaling %q is not supported", f.path, ErrInvalid, st)
		}
	}
	if _, ok := f.byName["rope_freqs.weight"]; ok {
		return nil, fmt.Errorf("gguf: %s: %w: RoPE frequency factors (rope_freqs.weight, LLaMA-3.1 scaling) are not supported", f.path, ErrInvalid)
	}

	// Shapes only: f.tensors is read directly so that Config does not
	// trigger the llama Q/K copy that Tensors makes.
	var emb *tensor.Tensor
	if i, ok := f.byName[model.TokenEmbd]; ok {
		emb = f.tensors[i]
	}
	switch {
	case f.Has(arch + ".vocab_size"):
		if c.VocabSize, err = f.intOr(arch+".vocab_size", 0, big); err != nil {
			return nil, err
		}
	case emb != nil && len(emb.Shape) == 2:
		c.VocabSize = emb.Shape[0]
	default:
		a, err := f.Array(keyTokens)
		if err != nil {
			return nil, err
		}
		c.VocabSize = a.Len()
	}
	_, hasOutput := f.byName[model.Output]
	c.TieWordEmbeddings = !hasOutput
	_, c.AttentionBias = f.byName[model.Layer(0, model.AttnQB)]

	if f.Has(keyBOS) {
		if c.BOSTokenID, err = f.intOr(keyBOS, -1, big); err != nil {
			return nil, err
		}
	}
	if c.EOSTokenIDs, err = f.eosIDs(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", f.path, err)
	}
	return c, nil
}

// shortest32 returns the float64 written by the shortest decimal that
// round-trips x as a float32 (1e-6 for float32(1e-6)).
func shortest32(x float64) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(float32(x)), 'g', -1, 32), 64)
	if err != nil {
		return float64(float32(x))
	}
	return v
}

// Tokenizer metadata keys.
const (
	keyTokModel   = "tokenizer.ggml.model"
	keyTokPre     = "tokenizer.ggml.pre"
	keyTokens     = "tokenizer.ggml.tokens"
	keyTokenType  = "tokenizer.ggml.token_type"
	keyMerges     = "tokenizer.ggml.merges"
	keyBOS        = "tokenizer.ggml.bos_token_id"
	keyEOS        = "tokenizer.ggml.eos_token_id"
	keyEOT        = "tokenizer.ggml.eot_token_id"
	keyEOM        = "tokenizer.ggml.eom_token_id"
	keyAddBOS     = "tokenizer.ggml.add_bos_token"
	tokenNormal   = 1
	tokenUnknown  = 2
	tokenControl  = 3
	tokenUserDef  = 4
	tokenUnused   = 5
	tokenByteType = 6
)

// endOfGeneration lists control-token texts llama.cpp also treats as
// end-of-generation besides eos/eot/eom (llama-vocab.cpp).
var endOfGeneration = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>"}

// eosIDs returns eos_token_id first, then eot/eom ids and the control tokens
// llama.cpp treats as end-of-generation, in id order, without repeats.
func (f *File) eosIDs() ([]int, error) {
	var ids []int
	for _, k := range []string{keyEOS, keyEOT, keyEOM} {
		if !f.Has(k) {
			continue
		}
		id, err := f.intOr(k, 0, 1<<31-1)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	toks, err1 := f.Strings(keyTokens)
	types, err2 := f.Ints(keyTokenType)
	if err1 != nil || err2 != nil || len(toks) != len(types) {
		return ids, nil
	}
	for id, s := range toks {
		if types[id] == tokenControl && slices.Contains(endOfGeneration, s) && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// preTokenizers maps tokenizer.ggml.pre to the tokenizer package's names.
var preTokenizers = map[string]string{
	"qwen2":     "qwen2",
	"llama-bpe": "llama3",
	"llama3":    "llama3",
	"gpt-2":     "gpt2",
	"gpt2":      "gpt2",
	"default":   "gpt2",
	"":          "gpt2",
}

// TokenizerSpec builds the byte-level BPE tokenizer description from the
// tokenizer.ggml.* metadata. Only tokenizer.ggml.model "gpt2" (byte-level
// BPE) is supported. Control tokens (type 3) and user-defined tokens (type 4)
// become added tokens, control ones special; unused tokens (type 5) get an
// empty string. NFC is on for the qwen2 pre-tokenizer, as in Hugging Face's
// tokenizer.json; IgnoreMerges for llama3. BOS is set, with AddBOS, only when
// tokenizer.ggml.add_bos_token is true (default: true for llama3 only); EOS
// lists eos_token_id, eot/eom ids and the end-of-generation control tokens
// llama.cpp recognises.
func (f *File) TokenizerSpec() (tokenizer.Spec, error) {
	var s tokenizer.Spec
	bad := func(format string, args ...any) (tokenizer.Spec, error) {
		return tokenizer.Spec{}, fmt.Errorf("gguf: %s: %w: %s", f.path, ErrInvalid, fmt.Sprintf(format, args...))
	}
	kind, err := f.String(keyTokModel)
	if err != nil {
		return s, err
	}
	if kind != "gpt2" {
		return bad("%s %q is not supported (apr reads byte-level BPE, \"gpt2\")", keyTokModel, kind)
	}
	pre := ""
	if f.Has(keyTokPre) {
		if pre, err = f.String(keyTokPre); err != nil {
			return s, err
		}
	}
	name, ok := preTokenizers[pre]
	if !ok {
		return bad("%s %q is not supported (known: qwen2, llama-bpe, gpt-2)", keyTokPre, pre)
	}
	s.Pre = name
	s.NFC = name == "qwen2"

	toks, err := f.Strings(keyTokens)
	if err != nil {
		return s, err
	}
	s.Tokens = slices.Clone(toks)
	if f.Has(keyTokenType) {
		types, err := f.Ints(keyTokenType)
		if err != nil {
			return tokenizer.Spec{}, err
		}
		if len(types) != len(toks) {
			return bad("%s has %d entries, %s has %d", keyTokenType, len(types), keyTokens, len(toks))
		}
		for id, t := range types {
			switch t {
			case tokenControl, tokenUserDef:
				s.Added = append(s.Added, tokenizer.AddedToken{ID: id, Content: toks[id], Special: t == tokenControl})
			case tokenUnused:
				s.Tokens[id] = ""
			}
		}
	}
	if f.Has(keyMerges) {
		merges, err := f.Strings(keyMerges)
		if err != nil {
			return tokenizer.Spec{}, err
		}
		s.Merges = slices.Clone(merges)
	}

	addBOS := name == "llama3"
	if f.Has(keyAddBOS) {
		if addBOS, err = f.Bool(keyAddBOS); err != nil {
			return tokenizer.Spec{}, err
		}
	}
	s.BOS = -1
	s.AddBOS = addBOS
	s.IgnoreMerges = name == "llama3" // llama.cpp and Hugging Face both set it for LLaMA-3
	if addBOS {
		if !f.Has(keyBOS) {
			return bad("%s is true but %s is missing", keyAddBOS, keyBOS)
		}
		if s.BOS, err = f.intOr(keyBOS, 0, len(toks)-1); err != nil {
			return tokenizer.Spec{}, err
		}
	}
	if s.EOS, err = f.eosIDs(); err != nil {
		return tokenizer.Spec{}, err
	}
	for _, id := range s.EOS {
		if id >= len(toks) {
			return bad("end-of-sequence id %d is outside the %d tokens", id, len(toks))
		}
	}
	return s, nil
}

// ChatTemplate returns tokenizer.chat_template, or "" when the file has none.
func (f *File) ChatTemplate() string {
	s, _ := f.String(KeyChatTemplate)
	return s
}
