package cuda_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// synthModel builds a Qwen2 model of the given dimensions with random Q8_0
// matrices (scale 0.01, random quants), F32 norms of ones and zero biases:
// the weight bytes of a real checkpoint of that size, for timing only.
func synthModel(cfg *model.Config) *model.Model {
	r := rand.New(rand.NewPCG(1, 1))
	h, qDim, kvDim, ffn := cfg.Dims()
	ts := map[string]*tensor.Tensor{}
	half := tensor.F32ToF16(0.01)
	q8 := func(name string, rows, cols int) {
		rb, _ := tensor.Q8_0.RowBytes(cols)
		b := make([]byte, rows*rb)
		for i := 0; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], r.Uint64())
		}
		for blk := 0; blk < len(b); blk += 34 {
			binary.LittleEndian.PutUint16(b[blk:], half)
		}
		ts[name] = &tensor.Tensor{Name: name, DType: tensor.Q8_0, Shape: []int{rows, cols}, Data: b}
	}
	vec := func(name string, n int, v float32) {
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		ts[name] = &tensor.Tensor{Name: name, DType: tensor.F32, Shape: []int{n}, Data: b}
	}
	q8(model.TokenEmbd, cfg.VocabSize, h)
	vec(model.OutputNorm, h, 1)
	for i := 0; i < cfg.NumLayers; i++ {
		vec(model.Layer(i, model.AttnNorm), h, 1)
		vec(model.Layer(i, model.FFNNorm), h, 1)
		q8(model.Layer(i, model.AttnQ), qDim, h)
		q8(model.Layer(i, model.AttnK), kvDim, h)
		q8(model.Layer(i, model.AttnV), kvDim, h)
		q8(model.Layer(i, model.AttnO), h, qDim)
		q8(model.Layer(i, model.FFNGate), ffn, h)
		q8(model.Layer(i, model.FFNUp), ffn, h)
		q8(model.Layer(i, model.FFNDown), h, ffn)
		vec(model.Layer(i, model.AttnQB), qDim, 0)
		vec(model.Layer(i, model.AttnKB), kvDim, 0)
		vec(model.Layer(i, model.AttnVB), kvDim, 0)
	}
	return &model.Model{Path: "synthetic", Format: "gguf", Config: cfg, Tensors: ts}
}

// BenchmarkDecodeSynthetic times the graph decode step (positions 0..127,
// as llama-bench's tg128) on random Q8_0 models of Qwen2.5-Coder-0.5B and
// -1.5B dimensions.
func BenchmarkDecodeSynthetic(b *testing.B) {
	skipWithoutGPU(b)
	base := model.Config{Arch: model.ArchQwen2, VocabSize: 151936, MaxPositions: 32768, RopeTheta: 1e6,
		RMSNormEps: 1e-6, AttentionBias: true, TieWordEmbeddings: true, BOSTokenID: -1}
	sizes := []struct {
		name                         string
		layers, h, ffn, heads, kvHds int
	}{
		{"0.5B-Q8_0", 24, 896, 4864, 14, 2},
		{"1.5B-Q8_0", 28, 1536, 8960, 12, 2},
	}
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			cfg := base
			cfg.NumLayers, cfg.HiddenSize, cfg.IntermediateSize = s.layers, s.h, s.ffn
			cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim = s.heads, s.kvHds, s.h/s.heads
			g, err := cuda.Load(synthModel(&cfg), cuda.Options{Context: 512, Numerics: cpu.Numerics{KVCacheF16: true}})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			tok := 9707
			for i := 0; i < 16; i++ {
				if tok, err = g.DecodeArgmax(tok%cfg.VocabSize, i); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if tok, err = g.DecodeArgmax(tok%cfg.VocabSize, i%128); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
