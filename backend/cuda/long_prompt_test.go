package cuda_test

import (
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/sample"
)

// ggufLongLogits is TestLongPromptMatchesCPU's bar for GGUF files' last
// prompt position (8-bit activations; H100, 2026-11-26: 0.0149 and 0.0183):
// 2e-2 x max|logit|.
const ggufLongLogits = 2e-2

// TestLongPromptMatchesCPU feeds a 2,000-token prompt (the reference
// prompts' tokens, repeated) to Forward in one call, so that its passes of
// 512 rows past attnSplitMinGGML keys run the tensor-core prompt attention
// (attn_mma_f16 in key ranges over the GGUF files' F16 cache, attn_mma over
// the SafeTensors model's float32 cache), and compares the last position's
// logits and 16 greedy steps after it with the CPU engine. As in
// TestSplitDecodeMatchesCPU, GGUF files are held to the CPU engine with
// plain attention over their F16 cache (the kernels sum in float32, not
// ggml's F16-rounded accumulator) and to ggufLongLogits; the SafeTensors
// model (over its float32 cache, and over an F16 one: attn_mma_f16, then
// attn_f16_dec's split for the steps) to the 1e-2 x max|logit| and
// every greedy step equal.
func TestLongPromptMatchesCPU(t *testing.T) {
	skipWithoutGPU(t)
	const n, steps = 2000, 16
	var ids []int
	for len(ids) < n {
		for _, p := range testref.HFOutputs(t) {
			ids = append(ids, p.TokenIDs...)
		}
	}
	ids = ids[:n]
	for _, c := range tinyCases {
		t.Run(c.name(), func(t *testing.T) {
			m, e, g := openBothCache(t, c.rel, n+steps+1, c.cache, nil)
			bar, strict := ggufLongLogits, false
			if pe := plainAttention(t, m); pe != nil {
				e = pe
			}
			if !m.GGMLNumerics() {
				bar, strict = 1e-2, true
			}
			seq := e.NewSequence(n + steps + 1)
			want, err := seq.Forward(ids, false)
			if err != nil {
				t.Fatal(err)
			}
			rows := make([]cuda.Row, n)
			for p := range rows {
				rows[p] = cuda.Row{Token: ids[p], Pos: p, Logits: p == n-1}
			}
			got := make([]float32, m.Config.VocabSize)
			if err := g.Forward(rows, got); err != nil {
				t.Fatal(err)
			}
			ratio := logitRatio(got, want)
			if ratio > bar {
				t.Errorf("last-position logits differ by %.3g x max|logit| (bar %g)", ratio, bar)
			}
			same, err := greedySame(seq, g, sample.Argmax(want), sample.Argmax(got), n, steps)
			if err != nil {
				t.Fatal(err)
			}
			if strict && same < steps {
				t.Errorf("greedy continuations differ at step %d", same)
			}
			t.Logf("%d-token prompt: logits |diff| %.3g x max|logit|; greedy GPU == CPU for %d of %d steps", n, ratio, same, steps)
		})
	}
}
