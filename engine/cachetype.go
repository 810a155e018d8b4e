package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apr-llm/apr/backend/cpu"
)

// CacheType is the element type of the KV cache, as llama.cpp's
// --cache-type-k / --cache-type-v name it.
type CacheType string

const (
	// CacheDefault keeps the model's reference numerics: f16 for weights
	// that came from GGUF (llama.cpp's default), f32 for SafeTensors
	// (transformers').
	CacheDefault CacheType = ""
	// CacheF32 stores keys and values as float32.
	CacheF32 CacheType = "f32"
	// CacheF16 stores keys and values as F16: half the memory of f32, and
	// on the GPU the tensor-core prompt attention of F16 caches.
	CacheF16 CacheType = "f16"
)

// llamaCacheTypes are llama.cpp's other cache types, which apr does not
// store (named in the error, so that a llama.cpp user's flag gets a clear
// answer).
var llamaCacheTypes = []string{"bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"}

// ParseCacheType reads a --cache-type-k / --cache-type-v value
// (case-insensitive; "" is CacheDefault).
func ParseCacheType(s string) (CacheType, error) {
	t := CacheType(strings.ToLower(strings.TrimSpace(s)))
	switch {
	case t == CacheDefault || t == CacheF32 || t == CacheF16:
		return t, nil
	case slices.Contains(llamaCacheTypes, string(t)):
		return "", fmt.Errorf("KV cache type %q: apr stores the KV cache as f32 or f16", s)
	}
	return "", fmt.Errorf("unknown KV cache type %q: f32 or f16", s)
}

// Numerics returns n with its KV cache of type t (CacheDefault: n as it
// is; see cpu.Numerics.WithKVCacheF16). The GPU backend takes the same
// numerics.
func (t CacheType) Numerics(n cpu.Numerics) cpu.Numerics {
	if t != CacheDefault {
		n = n.WithKVCacheF16(t == CacheF16)
	}
	return n
}

// WithCache returns o with its KV cache of type t (CacheDefault: as it
// is).
func (o Options) WithCache(t CacheType) Options {
	o.Numerics = t.Numerics(o.Numerics)
	return o
}

// Cache is the type of o's KV cache.
func (o Options) Cache() CacheType {
	if o.KVCacheF16 {
		return CacheF16
	}
	return CacheF32
}

// Cache is the type of e's KV cache.
func (e *Engine) Cache() CacheType { return e.opts.Cache() }
