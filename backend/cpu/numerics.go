package cpu

import "github.com/apr-llm/apr/model"

// Numerics says whose rounding a backend follows. Both the CPU engine and
// the CUDA backend embed it in their options, so the two devices always
// agree on it.
type Numerics struct {
	// KVCacheF16 stores keys and values in F16 (llama.cpp's default),
	// otherwise float32 (transformers').
	KVCacheF16 bool
	// Rope picks how rotary angles are rounded.
	Rope RopeStyle
	// FlashAttention runs attention with ggml's CPU flash-attention kernels
	// (llama.cpp's default; needs KVCacheF16): the F16 kernel for passes of
	// fewer than 64 rows, the float32 tiled one from 64 rows on.
	FlashAttention bool
	// GGMLOps computes RMSNorm and the SiLU gate as ggml's CPU backend does
	// (double-precision sum of squares, ggml's SIMD exponential).
	GGMLOps bool
}

// NumericsFor returns the numerics of m's reference implementation: weights
// that came from GGUF (directly or through APR) run as llama.cpp's CPU
// backend runs them (F16 KV cache, ggml's rotary angles, its flash attention
// and elementwise kernels), SafeTensors weights as transformers does
// (float32 cache and math). The two differ only in the last bits, which
// decide near ties.
func NumericsFor(m *model.Model) Numerics {
	if !m.GGMLNumerics() {
		return Numerics{}
	}
	return Numerics{KVCacheF16: true, Rope: RopeGGML, FlashAttention: true, GGMLOps: true}
}

// WithKVCacheF16 returns n with an F16 (f16) or a float32 KV cache. ggml's
// flash attention runs over an F16 cache only, so a float32 one turns it
// off: attention then runs as transformers computes it.
func (n Numerics) WithKVCacheF16(f16 bool) Numerics {
	n.KVCacheF16 = f16
	if !f16 {
		n.FlashAttention = false
	}
	return n
}
