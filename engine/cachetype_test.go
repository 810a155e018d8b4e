package engine

import (
	"strings"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/internal/testref"
)

func TestParseCacheType(t *testing.T) {
	cases := []struct {
		in   string
		want CacheType
		err  string // substring of the error; "" for none
	}{
		{"", CacheDefault, ""},
		{"f16", CacheF16, ""},
		{" F32 ", CacheF32, ""},
		{"q8_0", "", "apr stores the KV cache as f32 or f16"},
		{"BF16", "", "apr stores the KV cache as f32 or f16"},
		{"f8", "", `unknown KV cache type "f8"`},
	}
	for _, c := range cases {
		got, err := ParseCacheType(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("ParseCacheType(%q): %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseCacheType(%q): error %v, want one saying %q", c.in, err, c.err)
		case got != c.want:
			t.Errorf("ParseCacheType(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWithCache(t *testing.T) {
	ggml := Options{Threads: 3, Numerics: cpu.Numerics{KVCacheF16: true, Rope: cpu.RopeGGML, FlashAttention: true, GGMLOps: true}}
	hf := Options{Threads: 3}
	cases := []struct {
		name  string
		in    Options
		cache CacheType
		want  Options
	}{
		{"gguf default", ggml, CacheDefault, ggml},
		{"gguf f16", ggml, CacheF16, ggml},
		// ggml's flash attention runs over an F16 cache only.
		{"gguf f32", ggml, CacheF32, Options{Threads: 3, Numerics: cpu.Numerics{Rope: cpu.RopeGGML, GGMLOps: true}}},
		{"safetensors default", hf, CacheDefault, hf},
		{"safetensors f16", hf, CacheF16, Options{Threads: 3, Numerics: cpu.Numerics{KVCacheF16: true}}},
		{"safetensors f32", hf, CacheF32, hf},
	}
	for _, c := range cases {
		got := c.in.WithCache(c.cache)
		if got != c.want {
			t.Errorf("%s: WithCache(%q) = %+v, want %+v", c.name, c.cache, got, c.want)
		}
		if c.cache != CacheDefault && got.Cache() != c.cache {
			t.Errorf("%s: Cache() = %q, want %q", c.name, got.Cache(), c.cache)
		}
	}
}

// TestCacheTypesMatchReferences runs each shared model with the other KV
// cache type than its reference's (--cache-type-k), against references
// made with the reference's cache, so the bars allow the rounding of one
// cache against the other: the chat answers identical and greedy
// continuations apart only from a near tie on (compareWithReference), and
//   - the SafeTensors model over an F16 cache against transformers'
//     float32 outputs: argmax at >= 99% of the prompt positions, as
//     llama.cpp's F16 GGUF and F16 cache reach (99.92% here);
//   - the GGUF files over a float32 cache (so without ggml's flash
//     attention) against llama.cpp's F16-cache outputs: argmax at >= 97%
//     of the prompt positions (98.06% and 98.55% measured, 99.27% with the
//     F16 cache) and, where they differ, llama.cpp's top-2 within 0.25
//     (the widest such gap measured: 0.191; 0.103 with the F16 cache).
func TestCacheTypesMatchReferences(t *testing.T) {
	t.Run("safetensors f16", func(t *testing.T) {
		_, e := openModelWith(t, testref.ModelDir(t), CacheF16)
		if e.opts.Cache() != CacheF16 {
			t.Fatalf("engine keeps a %s cache", e.opts.Cache())
		}
		compareWithReference(t, e, "safetensors", "transformers", hfReference(t), refBars{minArgmax: 0.99})
	})
	for _, c := range ggufReferences {
		t.Run(c.key+" f32", func(t *testing.T) {
			_, e := openModelWith(t, testref.Path(t, "models", "qwen2-tiny-coder-gguf", c.file), CacheF32)
			if e.opts.Cache() != CacheF32 || e.opts.FlashAttention {
				t.Fatalf("engine options %+v, want a float32 cache without flash attention", e.opts)
			}
			compareWithReference(t, e, c.key, "llama.cpp", testref.LlamaCppOutputs(t, c.key), refBars{minArgmax: 0.97, maxGap: 0.25})
		})
	}
}
