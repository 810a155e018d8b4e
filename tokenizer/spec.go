// Package tokenizer implements Hugging Face-exact byte-level BPE (the GPT-2 /
// Qwen2 family): NFC normalisation, the model's pre-tokenizer split, added and
// special tokens matched before BPE, and streaming decode.
package tokenizer

// Spec is everything needed to build a byte-level BPE tokenizer, whichever
// file it came from (tokenizer.json, vocab.json + merges.txt, GGUF metadata).
type Spec struct {
	// Tokens maps id -> token string in byte-level (GPT-2 bytes-to-unicode)
	// spelling, as in vocab.json and tokenizer.ggml.tokens. Empty strings mark
	// unused ids.
	Tokens []string
	// Merges in rank order, each "left right".
	Merges []string
	// Added tokens, matched in the raw text before normalisation and BPE.
	Added []AddedToken
	// Pre names the pre-tokenizer split: "qwen2" (default), "llama3", "gpt2"
	// (GGUF's tokenizer.ggml.pre names "llama-bpe" and "gpt-2" are accepted).
	Pre string
	// NFC applies Unicode NFC normalisation before pre-tokenisation (Qwen2's
	// tokenizer.json does; HF is the reference).
	NFC bool
	// BOS is the beginning-of-sequence id, -1 when none.
	BOS int
	// EOS ids end generation.
	EOS []int
	// IgnoreMerges looks a whole pre-token up in the vocabulary before
	// running merges (Hugging Face's BPE ignore_merges, set by LLaMA-3).
	IgnoreMerges bool
	// AddBOS tells callers that the model expects BOS before a prompt
	// (tokenizer_config.json's add_bos_token). Encode never adds it.
	AddBOS bool
}

// AddedToken is a token matched verbatim in the input before BPE.
type AddedToken struct {
	ID         int
	Content    string
	Special    bool
	LStrip     bool
	RStrip     bool
	SingleWord bool
	Normalized bool
}
