package cuda_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/sample"
)

// decodeVariants are the one-row step's choices (APR_CUDA_TUNE syntax)
// that TestDecodeVariantsEqual and BenchmarkDecodeVariants compare with the
// default: q/k/v of two types in one launch off, RoPE and the KV store in
// a rope_store launch (ropeInAttention), in attention_fa_rope (a block a
// head), the one-row
// products' items by pass, or by unit everywhere (mvUnits), and blocks of
// unit plans sized as planMatvec's groups had them (mvItems 6), smaller
// blocks by pass (mvPassItems), and groups of 4 rows in plans by pass of
// one pass a row (mvOnePassRW), rmsnorm blocks of a thread for 4 values
// (rmsPerThread), the attention's output quantized by quantize instead of
// the attention (attnQuant), and the one-row attention in the cluster
// kernel instead of attention_fa_pl_rope (faPipelined),
// attention_fa_pl_rope in its 288-thread layout (faPipeIso off), and the
// q/k/v launch over every multiprocessor or in 40 blocks (qkvCap), and
// q/k/v of Q8_K activations after a launch of rmsnorm instead of fused with
// it (fuseQKVK).
var decodeVariants = []string{"fapl288", "nofapl", "nofapl,noattnq", "noattnq", "nokvpre", "noqkv1", "norope1", "rope1,nocluster", "noqkv1,norope1", "nounits", "allunits", "mvitems=6", "passitems=3", "onepassrw=4", "rmsdiv=4", "qkvcap=0", "qkvcap=40", "nofuseqkvk", "nofuseqkvk,qkvcap=0"}

// TestDecodeVariantsEqual decodes 40 greedy steps of the synthetic GGUF
// models (1.5B Q4_K_M: q and k Q4_K, v Q6_K, the mixed launch; 0.5B
// Q4_K_M: Q5_0, Q8_0, Q4_K and Q6_K; 1.5B Q8_0) under every
// decodeVariants choice and holds each step's logits bit-identical to the
// default's: the one-launch q/k/v runs the same per-row sums, and
// attention_fa_pl_rope, attention_fa_cl_rope and attention_fa_rope the same
// rotations and attention as rope_store and attention_fa_cl or
// attention_fa.
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
			tok = sample.Argmax(l)
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

// BenchmarkDecodeVariants times BenchmarkDecodeSynthetic's step (positions
// 0..127, greedy on the device) on the four GGUF synthetic models under every
// decodeVariants choice, two rounds, one loaded model each, so that every
// choice is timed in the same run as the default.
func BenchmarkDecodeVariants(b *testing.B) {
	skipWithoutGPU(b)
	for _, i := range []int{3, 2, 1, 0} {
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
						timeDecode(b, g, cfg, 8)
					})
				}
			}
		})
	}
}
