package sample

import (
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// benchCases are the parameter sets BenchmarkSample measures: the OpenAI
// API's defaults (temperature 1, no filter), each filter alone, and
// Qwen2.5-Coder's generation_config.json with its repetition penalty.
var benchCases = []struct {
	name    string
	p       Params
	history int // tokens of history the penalty sees
}{
	{"greedy", Params{}, 0},
	{"temperature", Params{Temperature: 1}, 0},
	{"top_k_40", Params{Temperature: 1, TopK: 40}, 0},
	{"top_p_0.9", Params{Temperature: 1, TopP: 0.9}, 0},
	{"min_p_0.05", Params{Temperature: 1, MinP: 0.05}, 0},
	{"repetition_penalty", Params{Temperature: 0.7, TopK: 20, TopP: 0.8, RepeatPenalty: 1.1, RepeatLastN: -1}, 1024},
}

// BenchmarkSample draws from transformers' full 151,936 logits of prompt 0
// (../shared/testdata/reference/hf_logits_prompt0.f32), a real model's shape.
func BenchmarkSample(b *testing.B) {
	ref := testref.HFLogitsPrompt0(b)
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			history := make([]int, c.history)
			for i := range history {
				history[i] = (i * 7919) % len(ref)
			}
			logits := append([]float32(nil), ref...)
			s := New(c.p)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if c.history > 0 {
					copy(logits, ref)
				}
				s.Sample(logits, history)
			}
		})
	}
}

// BenchmarkLogprobs is the server's per-token cost of logprobs with five
// top_logprobs on the same logits.
func BenchmarkLogprobs(b *testing.B) {
	ref := testref.HFLogitsPrompt0(b)
	b.ReportAllocs()
	for range b.N {
		Logprobs(ref, 13, 5)
	}
}
