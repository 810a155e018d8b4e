package cuda_test

import (
	"fmt"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/sample"
)

// BenchmarkPickSynthetic times decode passes of the synthetic 1.5B Q4_K_M
// model, one row per slot (1 or 32 slots), each row's next token drawn as
// `apr run` draws it by default (temperature 0.8, top-k 40, repeat penalty
// 1.1 over the last 64 tokens): "host" copies every row's logits to the
// host and samples them there (Forward, Sampler.Sample; one row into Go
// memory as engine.Generate does, 32 into page-locked memory as the
// server's passes do, sampled one after the other), "device" applies the
// penalties and selects the top 40 on the device (ForwardPick) and draws
// from those (Sampler.SampleKeys). "argmax" is one row's DecodeArgmax.
func BenchmarkPickSynthetic(b *testing.B) {
	skipWithoutGPU(b)
	const maxRows, hist = 32, 64
	g, cfg := loadSynthSlots(b, 3, 256, maxRows)
	defer g.Close()
	vocab := cfg.VocabSize
	p := sample.Params{Temperature: 0.8, TopK: 40, RepeatPenalty: 1.1, RepeatLastN: hist, Seed: 1}
	history := make([][]int, maxRows)
	samplers := make([]*sample.Sampler, maxRows)
	for r := range history {
		for i := range hist {
			history[r] = append(history[r], (r*131+i*7919)%vocab)
		}
		samplers[r] = sample.New(p)
	}
	pinned, err := g.HostFloats(maxRows * vocab)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("rows=1/argmax", func(b *testing.B) {
		tok := 0
		for i := 0; i < b.N; i++ {
			if tok, err = g.DecodeArgmax(tok, 16+i%128); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(1e3*b.Elapsed().Seconds()/float64(b.N), "ms/pass")
	})
	for _, n := range []int{1, maxRows} {
		rows := make([]cuda.Row, n)
		setRows := func(i int) {
			for r := range rows {
				rows[r] = cuda.Row{Slot: r, Token: (r + 31*i) % vocab, Pos: 16 + i%128, Logits: true}
			}
		}
		logits := pinned
		if n == 1 {
			logits = make([]float32, vocab)
		}
		b.Run(fmt.Sprintf("rows=%d/host", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				setRows(i)
				if err := g.Forward(rows, logits); err != nil {
					b.Fatal(err)
				}
				for r := range rows {
					samplers[r].Sample(logits[r*vocab:(r+1)*vocab], history[r])
				}
			}
			b.ReportMetric(1e3*b.Elapsed().Seconds()/float64(b.N), "ms/pass")
		})
		picks, res := make([]cuda.Pick, n), make([]cuda.Picked, n)
		var edits []sample.Edit
		b.Run(fmt.Sprintf("rows=%d/device", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				setRows(i)
				for r := range picks {
					var pen float32
					edits, pen = samplers[r].Penalties(edits, vocab, history[r], nil, 0, 0)
					ce := picks[r].Edits[:0]
					for _, e := range edits {
						ce = append(ce, cuda.Edit{Token: int32(e.Token), Sub: e.Sub, Repeat: e.Repeat})
					}
					picks[r] = cuda.Pick{K: p.TopK, Temp: float32(p.Temperature), Edits: ce, Penalty: pen}
				}
				if err := g.ForwardPick(rows, picks, res, logits); err != nil {
					b.Fatal(err)
				}
				for r := range rows {
					if _, ok := samplers[r].SampleKeys(res[r].Keys); !ok {
						samplers[r].SamplePenalized(logits[r*vocab : (r+1)*vocab])
					}
				}
			}
			b.ReportMetric(1e3*b.Elapsed().Seconds()/float64(b.N), "ms/pass")
		})
	}
}
