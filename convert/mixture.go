package convert

import (
	"strings"

	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// This file is llama.cpp's per-tensor type choice (src/llama-quant.cpp:
// tensor_allows_quantization, llama_tensor_get_type_impl,
// tensor_type_fallback) for the file types apr writes and the Qwen2/LLaMA
// tensors it knows, without an importance matrix. Tensors are visited in
// llama.cpp's order (see ggmlOrder), because the attn_v counter depends on it.

// category is llama.cpp's tensor_category.
type category int

const (
	catOther category = iota
	catTokenEmbd
	catAttnQ
	catAttnK
	catAttnV
	catAttnQKV
	catAttnOut
	catFFNUp
	catFFNGate
	catFFNDown
	catOutput
)

// categoryOf is tensor_get_category on a GGML name.
func categoryOf(name string) category {
	switch {
	case name == "output.weight":
		return catOutput
	case name == "token_embd.weight":
		return catTokenEmbd
	case strings.Contains(name, "attn_qkv.weight"):
		return catAttnQKV
	case strings.Contains(name, "attn_v.weight"):
		return catAttnV
	case strings.Contains(name, "attn_k.weight"):
		return catAttnK
	case strings.Contains(name, "attn_q.weight"):
		return catAttnQ
	case strings.Contains(name, "attn_output.weight"):
		return catAttnOut
	case strings.Contains(name, "ffn_up"):
		return catFFNUp
	case strings.Contains(name, "ffn_gate"):
		return catFFNGate
	case strings.Contains(name, "ffn_down"):
		return catFFNDown
	}
	return catOther
}

// allowsQuantization is tensor_allows_quantization for the tensors of a
// Qwen2/LLaMA model: 2-D (or more) weights other than norms.
func allowsQuantization(name string, shape []int) bool {
	return len(shape) >= 2 && strings.HasSuffix(name, "weight") && !strings.Contains(name, "_norm.weight")
}

// mixState is quantize_state_impl: counters that make the choice depend on
// a tensor's position among its kind.
type mixState struct {
	ft             FileType
	nAttnV, iAttnV int
	nLayers        int
	iFFNDown       int
	tiedEmbeddings bool
	gqa            int
	is70B          bool
	fallbacks      []string
}

func newMixState(cfg *model.Config, ggmlNames []string, ft FileType) *mixState {
	s := &mixState{ft: ft, nLayers: cfg.NumLayers, tiedEmbeddings: true, gqa: cfg.NumHeads / cfg.NumKVHeads}
	for _, n := range ggmlNames {
		switch categoryOf(n) {
		case catAttnV, catAttnQKV:
			s.nAttnV++
		case catOutput:
			s.tiedEmbeddings = false
		}
	}
	// llama.cpp's LLM_TYPE_70B: 80 layers (for LLaMA, with grouped-query
	// attention; an 80-layer LLaMA without it is the 65B).
	s.is70B = cfg.NumLayers == 80 && (cfg.Arch == model.ArchQwen2 || cfg.NumKVHeads != cfg.NumHeads)
	return s
}

// useMoreBits is llama.cpp's use_more_bits.
func useMoreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

// typeFor is llama_tensor_get_type: the type a tensor (GGML name, canonical
// shape, current type) gets in the output file.
func (s *mixState) typeFor(name string, shape []int, cur tensor.DType) tensor.DType {
	if !allowsQuantization(name, shape) {
		return cur
	}
	t := s.ft.Default
	if !t.Quantized() {
		return t
	}
	t = s.mix(name, shape, t)
	return s.fallback(name, shape, t)
}

// mix is llama_tensor_get_type_impl for apr's file types.
func (s *mixState) mix(name string, shape []int, t tensor.DType) tensor.DType {
	ft := s.ft.ID
	cat := categoryOf(name)
	ncols := shape[len(shape)-1]
	switch {
	case cat == catOutput || (s.tiedEmbeddings && cat == catTokenEmbd):
		if ncols%t.BlockSize() != 0 {
			return tensor.Q8_0
		}
		if t != tensor.Q8_0 {
			return tensor.Q6_K
		}
		return t
	case cat == catTokenEmbd:
		return t
	case cat == catAttnV || cat == catAttnQKV:
		defer func() { s.iAttnV++ }()
		switch {
		case ft == ftypeQ2_K:
			t = tensor.Q3_K
			if s.gqa >= 4 {
				t = tensor.Q4_K
			}
		case ft == ftypeQ3KM:
			t = tensor.Q4_K
			if s.iAttnV < 2 {
				t = tensor.Q5_K
			}
		case ft == ftypeQ3KL:
			t = tensor.Q5_K
		case (ft == ftypeQ4KM || ft == ftypeQ5KM) && useMoreBits(s.iAttnV, s.nAttnV):
			t = tensor.Q6_K
		case ft == ftypeQ4KS && s.iAttnV < 4:
			t = tensor.Q5_K
		}
		if s.is70B && (t == tensor.Q3_K || t == tensor.Q4_K) {
			t = tensor.Q5_K
		}
		return t
	case cat == catFFNDown:
		i, n := s.iFFNDown, s.nLayers
		s.iFFNDown++
		switch {
		case ft == ftypeQ2_K:
			return tensor.Q3_K
		case ft == ftypeQ3KM:
			if i < n/16 {
				return tensor.Q5_K
			}
			return tensor.Q4_K
		case ft == ftypeQ3KL:
			return tensor.Q5_K
		case ft == ftypeQ4KM:
			if useMoreBits(i, n) {
				return tensor.Q6_K
			}
		case ft == ftypeQ5KM && useMoreBits(i, n):
			return tensor.Q6_K
		case ft == ftypeQ4KS && i < n/8:
			return tensor.Q5_K
		}
		return t
	case cat == catAttnOut:
		switch ft {
		case ftypeQ2_K:
			return tensor.Q3_K
		case ftypeQ3KM:
			return tensor.Q4_K
		case ftypeQ3KL:
			return tensor.Q5_K
		}
	}
	return t
}

// fallback is tensor_type_fallback: a type whose block does not divide the
// row length is replaced by one whose block does, else F16.
func (s *mixState) fallback(name string, shape []int, t tensor.DType) tensor.DType {
	ncols := shape[len(shape)-1]
	if ncols%t.BlockSize() == 0 {
		return t
	}
	r := t
	switch t {
	case tensor.Q2_K, tensor.Q3_K:
		r = tensor.Q4_0
	case tensor.Q4_K:
		r = tensor.Q5_0
	case tensor.Q5_K:
		r = tensor.Q5_1
	case tensor.Q6_K:
		r = tensor.Q8_0
	case tensor.IQ4_XS:
		r = tensor.IQ4_NL
	}
	if ncols%r.BlockSize() != 0 {
		r = tensor.F16
	}
	s.fallbacks = append(s.fallbacks, name+": "+t.String()+" -> "+r.String())
	return r
}

// ggmlName is a tensor's GGML name (its own name when outside the table).
func ggmlName(canonical string) string {
	n, _ := gguf.GGMLName(canonical)
	return n
}
