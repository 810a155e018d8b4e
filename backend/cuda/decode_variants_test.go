package cuda_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
)

// decodeVariants are the one-row step's choices (APR_CUDA_TUNE syntax)
// that TestDecodeVariantsEqual and BenchmarkDecodeVariants compare with the
// default: the one-kernel step (mk.go) on and off, q/k/v of two types in
// one launch off, and an L2 weight prefetch schedule (prefetch.go).
var decodeVariants = []string{"nomk", "mk", "mk,mkbar=0", "mk,mkbar=2,mksleep=64"}

// TestDecodeVariantsEqual decodes 40 greedy steps of the synthetic GGUF
// models (1.5B Q4_K_M: q and k Q4_K, v Q6_K, the mixed launch; 0.5B
// Q4_K_M: Q5_0, Q8_0, Q4_K and Q6_K; 1.5B Q8_0) under every
// decodeVariants choice and holds each step's logits bit-identical to the
// default's: the prefetches write nothing, and the one-launch q/k/v and
// the one-kernel step run the same per-row sums and operations.
func TestDecodeVariantsEqual(t *testing.T) {
	skipWithoutGPU(t)
	for _, i := range []int{3, 1, 2} {
		t.Run(synthCases[i].name, func(t *testing.T) { decodeVariantsEqual(t, i) })
	}
}

func decodeVariantsEqual(t *testing.T, i int) {
	g, cfg := loadSynth(t, i, 64)
	defer g.Close()
	run := func(v string) [][]float32 {
		defer cuda.SetTune(v)()
		g.DropDecodeGraphs()
		defer g.DropDecodeGraphs()
		var out [][]float32
		tok := 9707
		for p := 0; p < 40; p++ {
			l, err := g.Decode(tok, p)
			if err != nil {
				t.Fatalf("%s: %v", v, err)
			}
			out = append(out, l)
			tok = argmax(l)
		}
		return out
	}
	want := run("")
	for _, v := range decodeVariants {
		got := run(v)
		for p := range want {
			for i := range want[p] {
				if math.Float32bits(got[p][i]) != math.Float32bits(want[p][i]) {
					t.Fatalf("%s: step %d logit %d = %g, default %g", v, p, i, got[p][i], want[p][i])
				}
			}
		}
		t.Logf("%s: %d steps x %d logits equal to the default's", v, len(want), cfg.VocabSize)
	}
}

func argmax(v []float32) int {
	b := 0
	for i, x := range v {
		if x > v[b] {
			b = i
		}
	}
	return b
}

// BenchmarkDecodeVariants times BenchmarkDecodeSynthetic's step (positions
// 0..127, greedy on the device) on the GGUF synthetic models under every
// decodeVariants choice, two rounds, one loaded model each, so that every
// choice is timed in the same run as the default.
func BenchmarkDecodeVariants(b *testing.B) {
	skipWithoutGPU(b)
	for _, i := range []int{3, 2, 1} {
		b.Run(synthCases[i].name, func(b *testing.B) {
			g, cfg := loadSynth(b, i, 512)
			defer g.Close()
			for round := 1; round <= 2; round++ {
				for _, v := range append([]string{""}, decodeVariants...) {
					name := v
					if name == "" {
						name = "default"
					}
					b.Run(fmt.Sprintf("round=%d/%s", round, name), func(b *testing.B) {
						defer cuda.SetTune(v)()
						g.DropDecodeGraphs()
						defer g.DropDecodeGraphs()
						tok := 9707
						var err error
						for p := 0; p < 8; p++ {
							if tok, err = g.DecodeArgmax(tok%cfg.VocabSize, p); err != nil {
								b.Fatal(err)
							}
						}
						b.ResetTimer()
						for n := 0; n < b.N; n++ {
							if tok, err = g.DecodeArgmax(tok%cfg.VocabSize, n%128); err != nil {
								b.Fatal(err)
							}
						}
						b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
					})
				}
			}
		})
	}
}

// mkPhases names the one-kernel step's phases in MKTrace's order.
var mkPhases = []string{"qkv", "attention", "o", "gate/up", "down"}

// BenchmarkMKPhases reports where the one-kernel step's time goes on the
// synthetic 1.5B and 0.5B Q4_K_M models: block 0's mean microseconds a
// layer in each phase's own work and in the barrier after it (waiting for
// the slowest block and the barrier itself), the LM head, and a barrier
// alone (the kernel passing 140 barriers and nothing else), for barrier
// kinds and polling intervals (mkbar, mksleep).
func BenchmarkMKPhases(b *testing.B) {
	skipWithoutGPU(b)
	for _, i := range []int{3, 1} {
		b.Run(synthCases[i].name, func(b *testing.B) {
			g, cfg := loadSynth(b, i, 512)
			defer g.Close()
			for _, v := range []string{"mk,mkbar=2", "mk,mkbar=2,mksleep=64", "mk,mkbar=0", "mk,mkbar=1,mksleep=64"} {
				b.Run(v, func(b *testing.B) {
					defer cuda.SetTune(v)()
					tok := 9707
					var err error
					for p := 0; p < 8; p++ {
						if tok, err = g.DecodeArgmax(tok%cfg.VocabSize, p); err != nil {
							b.Fatal(err)
						}
					}
					work, wait := make([]float64, 5), make([]float64, 5)
					var head, total, bar float64
					const steps = 32
					for s := 0; s < steps; s++ {
						t, err := g.MKTrace(tok%cfg.VocabSize, 8+s, 0)
						if err != nil {
							b.Fatal(err)
						}
						nl := (len(t) - 2) / 10
						for l := 0; l < nl; l++ {
							prev := t[0]
							if l > 0 {
								prev = t[10*l]
							}
							for p := 0; p < 5; p++ {
								w0 := t[1+10*l+2*p]
								w1 := t[2+10*l+2*p]
								work[p] += float64(w0 - prev)
								wait[p] += float64(w1 - w0)
								prev = w1
							}
						}
						head += float64(t[len(t)-1] - t[len(t)-2])
						total += float64(t[len(t)-1] - t[0])
						tb, err := g.MKTrace(0, 8+s, 140)
						if err != nil {
							b.Fatal(err)
						}
						bar += float64(tb[1]-tb[0]) / 140
					}
					nl := float64(cfg.NumLayers * steps)
					line := ""
					for p, name := range mkPhases {
						line += fmt.Sprintf(" %s %.2f+%.2f", name, work[p]/nl/1e3, wait[p]/nl/1e3)
					}
					b.Logf("%s, us a layer (work+barrier):%s; head %.1f us; step %.1f us; a barrier alone %.2f us",
						v, line, head/steps/1e3, total/steps/1e3, bar/steps/1e3)
					b.ReportMetric(total/steps/1e3, "us/step")
					b.ReportMetric(bar/steps/1e3, "us/barrier")
				})
			}
		})
	}
}
