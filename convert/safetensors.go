package convert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apr-llm/apr/format/safetensors"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// The pre-tokenizer split patterns of Hugging Face's tokenizer.json files
// (the tokenizer package recognises exactly these).
const (
	splitQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	splitLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// SafeTensorsResult describes a written folder.
type SafeTensorsResult struct {
	// Dequantized lists the quantized tensors written as float32.
	Dequantized []string
}

// WriteSafeTensors checks m and writes it as a Hugging Face model folder at
// dir (which must not exist, or be empty): model.safetensors, config.json,
// generation_config.json, tokenizer.json and tokenizer_config.json (with the
// chat template). Float tensors are stored as they are; quantized tensors
// are dequantized exactly to float32 (much larger). The folder is built
// beside dir and renamed into place.
func WriteSafeTensors(ctx context.Context, dir string, m *Model) (*SafeTensorsResult, error) {
	if err := Check(m); err != nil {
		return nil, err
	}
	res := &SafeTensorsResult{}
	ts := make([]*tensor.Tensor, len(m.Tensors))
	for i, t := range m.Tensors {
		ts[i] = t
		if t.DType.Quantized() {
			var err error
			if ts[i], err = Cast(t, tensor.F32); err != nil {
				return nil, err
			}
			res.Dequantized = append(res.Dequantized, t.Name)
		}
	}
	files := map[string]func(io.Writer) error{
		"model.safetensors": func(w io.Writer) error {
			return safetensors.Write(w, ts, map[string]string{"format": "pt"})
		},
		"config.json":           jsonFile(hfConfigJSON(m)),
		"tokenizer.json":        jsonFile(tokenizerJSON(m)),
		"tokenizer_config.json": jsonFile(tokenizerConfigJSON(m)),
	}
	if g := generationJSON(m); g != nil {
		files["generation_config.json"] = jsonFile(g)
	}
	if err := writeDirAtomic(ctx, dir, files); err != nil {
		return nil, err
	}
	return res, nil
}

func jsonFile(v any) func(io.Writer) error {
	return func(w io.Writer) error {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
		_, err := w.Write(b.Bytes())
		return err
	}
}

// writeDirAtomic writes files into a temporary folder beside dir and renames
// it to dir (replacing an empty folder).
func writeDirAtomic(ctx context.Context, dir string, files map[string]func(io.Writer) error) (err error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("convert: %s exists and is not empty", dir)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for name, write := range files {
		if err = WriteAtomic(ctx, filepath.Join(tmp, name), write); err != nil {
			return fmt.Errorf("convert: %s: %w", name, err)
		}
	}
	if err = os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	os.Remove(dir) // an empty folder in the way
	if err = os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

func hfConfigJSON(m *Model) map[string]any {
	c := m.Config
	arch, typ := "Qwen2ForCausalLM", "qwen2"
	if c.Arch == model.ArchLlama {
		arch, typ = "LlamaForCausalLM", "llama"
	}
	dtype := "float32"
	if t, ok := m.Tensor(model.TokenEmbd); ok && !t.DType.Quantized() {
		dtype = map[tensor.DType]string{tensor.BF16: "bfloat16", tensor.F16: "float16", tensor.F32: "float32"}[t.DType]
	}
	cfg := map[string]any{
		"architectures": []string{arch}, "model_type": typ,
		"hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize, "num_hidden_layers": c.NumLayers,
		"num_attention_heads": c.NumHeads, "num_key_value_heads": c.NumKVHeads, "head_dim": c.HeadDim,
		"vocab_size": c.VocabSize, "max_position_embeddings": c.MaxPositions, "rope_theta": c.RopeTheta,
		"rms_norm_eps": c.RMSNormEps, "tie_word_embeddings": c.TieWordEmbeddings, "attention_bias": c.AttentionBias,
		"hidden_act": "silu", "torch_dtype": dtype,
	}
	if c.BOSTokenID >= 0 {
		cfg["bos_token_id"] = c.BOSTokenID
	}
	eos := c.EOSTokenIDs
	if len(eos) == 0 {
		eos = m.Tokenizer.EOS
	}
	switch len(eos) {
	case 0:
	case 1:
		cfg["eos_token_id"] = eos[0]
	default:
		cfg["eos_token_id"] = eos
	}
	return cfg
}

func generationJSON(m *Model) map[string]any {
	g := m.Generation
	out := map[string]any{}
	set := func(k string, v any, ok bool) {
		if ok {
			out[k] = v
		}
	}
	set("do_sample", g.DoSample, g.DoSample != nil)
	set("temperature", g.Temperature, g.Temperature != nil)
	set("top_k", g.TopK, g.TopK != nil)
	set("top_p", g.TopP, g.TopP != nil)
	set("min_p", g.MinP, g.MinP != nil)
	set("repetition_penalty", g.RepeatPenalty, g.RepeatPenalty != nil)
	set("eos_token_id", g.EOSTokenIDs, len(g.EOSTokenIDs) > 0)
	if len(out) == 0 {
		return nil
	}
	return out
}

// tokenizerJSON writes the byte-level BPE tokenizer as a Hugging Face
// tokenizer.json that the tokenizer package (and transformers) read back to
// the same Spec.
func tokenizerJSON(m *Model) map[string]any {
	s := m.Tokenizer
	added := map[int]bool{}
	var addedJSON []map[string]any
	for _, a := range s.Added {
		added[a.ID] = true
		addedJSON = append(addedJSON, map[string]any{"id": a.ID, "content": a.Content, "single_word": a.SingleWord,
			"lstrip": a.LStrip, "rstrip": a.RStrip, "normalized": a.Normalized, "special": a.Special})
	}
	vocab := map[string]int{}
	for id, tok := range s.Tokens {
		if tok != "" && !added[id] {
			if _, dup := vocab[tok]; !dup {
				vocab[tok] = id
			}
		}
	}
	var normalizer any
	if s.NFC {
		normalizer = map[string]any{"type": "NFC"}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	var pre any
	switch s.Pre {
	case "gpt2", "gpt-2":
		pre = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	default:
		pattern := splitQwen2
		if s.Pre == "llama3" || s.Pre == "llama-bpe" {
			pattern = splitLlama3
		}
		pre = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": pattern}, "behavior": "Isolated", "invert": false},
			byteLevel,
		}}
	}
	merges := s.Merges
	if merges == nil {
		merges = []string{}
	}
	return map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": addedJSON, "normalizer": normalizer, "pre_tokenizer": pre,
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": s.IgnoreMerges,
			"vocab": vocab, "merges": merges},
	}
}

func tokenizerConfigJSON(m *Model) map[string]any {
	s := m.Tokenizer
	name := func(id int) any {
		if id < 0 || id >= len(s.Tokens) {
			return nil
		}
		for _, a := range s.Added {
			if a.ID == id {
				return a.Content
			}
		}
		return s.Tokens[id]
	}
	cfg := map[string]any{"add_bos_token": s.AddBOS, "bos_token": name(s.BOS), "eos_token": nil,
		"tokenizer_class": "PreTrainedTokenizerFast"}
	if len(s.EOS) > 0 {
		cfg["eos_token"] = name(s.EOS[0])
	}
	if m.ChatTemplate != "" {
		cfg["chat_template"] = m.ChatTemplate
	}
	return cfg
}
