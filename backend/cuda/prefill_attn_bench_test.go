package cuda_test

import (
	"fmt"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/model"
)

// prompt512 is llama-bench's pp512 as BenchmarkPrefillSynthetic runs it: a
// 512-token prompt in slot 0, logits of the last row only; it returns the
// rows and room for the logits.
func prompt512(cfg *model.Config) ([]cuda.Row, []float32) {
	const n = 512
	rows := make([]cuda.Row, n)
	for p := range rows {
		rows[p] = cuda.Row{Token: (p * 7919) % cfg.VocabSize, Pos: p, Logits: p == n-1}
	}
	return rows, make([]float32, cfg.VocabSize)
}

// attnVariant is an attention kernel choice of BenchmarkPrefillAttention.
type attnVariant struct {
	name    string
	legacy  bool // cuda.SetAttentionLegacy
	mmaRows int  // attn_mma's block rows (0: off)
}

// BenchmarkPrefillAttention is BenchmarkPrefillSynthetic (pp512) with each
// kernel of ggml's tiled flash attention, two rounds taking them in turn
// on one loaded model: attention_fa_tiled (one block per query row and
// head) and the row-tiled kernels; for the cases with transformers'
// numerics (-hf: a float32 cache) attention (legacy), attn_f32_rows and
// attn_mma with blocks of 64 and 32 rows.
func BenchmarkPrefillAttention(b *testing.B) {
	skipWithoutGPU(b)
	for i, s := range synthCases {
		b.Run(s.name, func(b *testing.B) {
			g, cfg := loadSynth(b, i, 512)
			defer g.Close()
			rows, logits := prompt512(cfg)
			for round := 1; round <= 2; round++ {
				variants := []attnVariant{{"attention_fa_tiled", true, 0}, {"rows", false, 0}}
				if s.hf {
					variants = []attnVariant{{"attention", true, 0}, {"attn_f32_rows", false, 0}, {"attn_mma64", false, 64},
						{"attn_mma32", false, 32}}
				}
				for _, v := range variants {
					b.Run(fmt.Sprintf("%s/round%d", v.name, round), func(b *testing.B) {
						defer cuda.SetAttentionLegacy(v.legacy)()
						defer cuda.SetAttnMMA(v.mmaRows > 0, v.mmaRows)()
						if err := g.Forward(rows, logits); err != nil { // warm-up
							b.Fatal(err)
						}
						b.ResetTimer()
						for range b.N {
							if err := g.Forward(rows, logits); err != nil {
								b.Fatal(err)
							}
						}
						b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "tok/s")
					})
				}
			}
		})
	}
}
