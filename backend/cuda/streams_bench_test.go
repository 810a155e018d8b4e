package cuda_test

import (
	"fmt"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
)

// streamPolicies are the pass choices BenchmarkStreamsSynthetic compares:
// "base" as before (mmq from 16 rows, no pass graphs, pageable logits),
// then useMMQ's choice, pass graphs and page-locked logits added one after
// the other ("pinned" is Forward's default), two other product choices,
// and "nologits" the default without the LM head and the logits' copy.
var streamPolicies = []struct {
	name           string
	p              cuda.PassPolicy // zero: Forward's default
	pinned, logits bool
}{
	{"base", cuda.PassPolicy{AllRows: 16}, false, true},
	{"choice", cuda.PassPolicy{AllRows: 64, MinBlocks: 128, SmallRows: 33, SmallRowsQ6K: 64}, false, true},
	{"graph", cuda.PassPolicy{AllRows: 64, MinBlocks: 128, SmallRows: 33, SmallRowsQ6K: 64, GraphRows: 64}, false, true},
	{"pinned", cuda.PassPolicy{}, true, true},
	{"mmq-all", cuda.PassPolicy{AllRows: 16, GraphRows: 64}, true, true},
	{"mmq-q4k", cuda.PassPolicy{AllRows: 64, MinBlocks: 128, SmallRows: 16, SmallRowsQ6K: 64, GraphRows: 64}, true, true},
	{"nologits", cuda.PassPolicy{}, true, false},
}

// BenchmarkStreamsSynthetic times passes of one row for each of 8 or 32
// sequences (positions after a 128-token prompt each, every row's logits
// copied to the host), as apr bench-run --cuda --streams and
// llama-batched-bench run them, on the synthetic 1.5B and 0.5B Q4_K_M
// models, the 1.5B Q8_0 one and the 1.5B BF16 one with transformers'
// numerics, under each of
// streamPolicies; tok/s counts every stream's token.
func BenchmarkStreamsSynthetic(b *testing.B) {
	skipWithoutGPU(b)
	const prompt, maxStreams = 128, 32
	for _, i := range []int{3, 2, 1, 7} {
		s := synthCases[i]
		b.Run(s.name, func(b *testing.B) {
			g, cfg := loadSynthSlots(b, i, 256, maxStreams)
			defer g.Close()
			vocab := cfg.VocabSize
			pageable := make([]float32, maxStreams*vocab)
			pinned, err := g.HostFloats(maxStreams * vocab)
			if err != nil {
				b.Fatal(err)
			}
			for _, n := range []int{maxStreams, 8} {
				rows := make([]cuda.Row, 0, n*prompt)
				for slot := 0; slot < n; slot++ {
					for p := 0; p < prompt; p++ {
						rows = append(rows, cuda.Row{Slot: slot, Token: (slot*977 + p*7919) % vocab, Pos: p, Logits: p == prompt-1})
					}
				}
				if err := g.Forward(rows, pageable); err != nil {
					b.Fatal(err)
				}
				step := make([]cuda.Row, n)
				for _, pol := range streamPolicies {
					b.Run(fmt.Sprintf("streams=%d/%s", n, pol.name), func(b *testing.B) {
						p := pol.p
						if p == (cuda.PassPolicy{}) {
							p = cuda.DefaultPassPolicy()
						}
						defer cuda.SetPassPolicy(p)()
						logits := pageable
						if pol.pinned {
							logits = pinned
						}
						pass := func(i int) {
							for slot := range step {
								step[slot] = cuda.Row{Slot: slot, Token: (slot + 31*i) % vocab, Pos: prompt + i%64, Logits: pol.logits}
							}
							if err := g.Forward(step, logits); err != nil {
								b.Fatal(err)
							}
						}
						for i := 0; i < 3; i++ { // the pass graph is captured on the second
							pass(i)
						}
						b.ResetTimer()
						for i := 0; i < b.N; i++ {
							pass(i)
						}
						b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
						b.ReportMetric(1e3*b.Elapsed().Seconds()/float64(b.N), "ms/pass")
					})
				}
			}
		})
	}
}

// BenchmarkStreamPass runs passes of one row for each of 32 sequences of
// the synthetic 1.5B Q4_K_M, 1.5B Q8_0 and 1.5B BF16 (transformers' numerics, as
// `bench -gpu` runs SafeTensors) models at positions 128 on, without a
// prompt first (attention's work depends on the positions, not on what
// the cache holds) and kernel by kernel: a profiler's first launches are
// one pass (ncu --launch-count with -test.benchtime 1x and one case).
func BenchmarkStreamPass(b *testing.B) {
	skipWithoutGPU(b)
	const n = 32
	for _, i := range []int{3, 2, 7} {
		b.Run(synthCases[i].name, func(b *testing.B) {
			g, cfg := loadSynthSlots(b, i, 256, n)
			defer g.Close()
			p := cuda.DefaultPassPolicy()
			p.GraphRows = 0
			defer cuda.SetPassPolicy(p)()
			logits, err := g.HostFloats(n * cfg.VocabSize)
			if err != nil {
				b.Fatal(err)
			}
			step := make([]cuda.Row, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for slot := range step {
					step[slot] = cuda.Row{Slot: slot, Token: (slot + 31*i) % cfg.VocabSize, Pos: 128 + i%64, Logits: true}
				}
				if err := g.Forward(step, logits); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(1e3*b.Elapsed().Seconds()/float64(b.N), "ms/pass")
		})
	}
}
