package cuda_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// scaleFields are the offsets of each block type's f16 scales in its
// block: random bytes there would make infinities and NaNs.
var scaleFields = map[tensor.DType][]int{
	tensor.Q8_0: {0}, tensor.Q4_0: {0}, tensor.Q5_0: {0},
	tensor.Q4_K: {0, 2}, tensor.Q5_K: {0, 2}, tensor.Q6_K: {208},
}

// quantMix picks a matrix's type: quant for every matrix (Q8_0), or as
// llama.cpp's Q4_K_M roughly does (Q4_K, with Q6_K for attn_v, ffn_down
// and the embedding; Q5_0 and Q8_0 where rows are not a multiple of 256).
type quantMix func(name string, cols int) tensor.DType

func allQ8_0(string, int) tensor.DType { return tensor.Q8_0 }

func allBF16(string, int) tensor.DType { return tensor.BF16 }

// floatBits are, for the float types, a mask of an element's sign and low
// mantissa bits and the exponent put in their place: random bits become
// values of magnitude 2^-6 to 2^-5 (never NaN or Inf).
var floatBits = map[tensor.DType]struct{ keep, set uint64 }{
	tensor.BF16: {0x807f_807f_807f_807f, 0x3c80_3c80_3c80_3c80},
	tensor.F16:  {0x83ff_83ff_83ff_83ff, 0x2400_2400_2400_2400},
	tensor.F32:  {0x807f_ffff_807f_ffff, 0x3c80_0000_3c80_0000},
}

func q4KM(name string, cols int) tensor.DType {
	six := name == model.TokenEmbd
	for _, suffix := range []string{model.AttnV, model.FFNDown} {
		if len(name) >= len(suffix) && name[len(name)-len(suffix):] == suffix {
			six = true
		}
	}
	switch {
	case cols%256 != 0 && six:
		return tensor.Q8_0
	case cols%256 != 0:
		return tensor.Q5_0
	case six:
		return tensor.Q6_K
	}
	return tensor.Q4_K
}

// synthModel builds a Qwen2 model of the given dimensions with random
// matrices (the types mix picks; quantized ones with scales 0.01, float
// ones of magnitude 2^-6 to 2^-5), F32 norms of ones
// and zero biases: the weight bytes of a real checkpoint of that size, for
// timing only.
func synthModel(cfg *model.Config, mix quantMix) *model.Model {
	r := rand.New(rand.NewPCG(1, 1))
	h, qDim, kvDim, ffn := cfg.Dims()
	ts := map[string]*tensor.Tensor{}
	half := tensor.F32ToF16(0.01)
	mat := func(name string, rows, cols int) {
		dt := mix(name, cols)
		rb, _ := dt.RowBytes(cols)
		bs, _ := dt.RowBytes(dt.BlockSize())
		b := make([]byte, rows*rb)
		fb, isFloat := floatBits[dt]
		for i := 0; i+8 <= len(b); i += 8 {
			v := r.Uint64()
			if isFloat {
				v = v&fb.keep | fb.set
			}
			binary.LittleEndian.PutUint64(b[i:], v)
		}
		for blk := 0; blk+bs <= len(b); blk += bs {
			for _, off := range scaleFields[dt] {
				binary.LittleEndian.PutUint16(b[blk+off:], half)
			}
		}
		ts[name] = &tensor.Tensor{Name: name, DType: dt, Shape: []int{rows, cols}, Data: b}
	}
	vec := func(name string, n int, v float32) {
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		ts[name] = &tensor.Tensor{Name: name, DType: tensor.F32, Shape: []int{n}, Data: b}
	}
	mat(model.TokenEmbd, cfg.VocabSize, h)
	vec(model.OutputNorm, h, 1)
	for i := 0; i < cfg.NumLayers; i++ {
		vec(model.Layer(i, model.AttnNorm), h, 1)
		vec(model.Layer(i, model.FFNNorm), h, 1)
		mat(model.Layer(i, model.AttnQ), qDim, h)
		mat(model.Layer(i, model.AttnK), kvDim, h)
		mat(model.Layer(i, model.AttnV), kvDim, h)
		mat(model.Layer(i, model.AttnO), h, qDim)
		mat(model.Layer(i, model.FFNGate), ffn, h)
		mat(model.Layer(i, model.FFNUp), ffn, h)
		mat(model.Layer(i, model.FFNDown), h, ffn)
		vec(model.Layer(i, model.AttnQB), qDim, 0)
		vec(model.Layer(i, model.AttnKB), kvDim, 0)
		vec(model.Layer(i, model.AttnVB), kvDim, 0)
	}
	return &model.Model{Path: "synthetic", Format: "gguf", Config: cfg, Tensors: ts}
}

// synthCases are Qwen2.5-Coder-0.5B and -1.5B dimensions in Q8_0,
// Q4_K_M and BF16 (as the SafeTensors checkpoints). The cases run GGUF
// numerics (F16 cache, ggml's flash attention and ops) except the -hf
// ones, which run the numerics the engine gives a SafeTensors model
// (cpu.NumericsFor: transformers', a float32 cache and plain attention),
// as `bench -gpu` runs its BF16 rows; -hf-f16 keeps those numerics over an
// F16 cache (--cache-type-k f16).
var synthCases = []struct {
	name                         string
	layers, h, ffn, heads, kvHds int
	mix                          quantMix
	hf                           bool // transformers' numerics (cpu.Numerics{})
	f16                          bool // with hf: an F16 KV cache (--cache-type-k f16)
}{
	{"0.5B-Q8_0", 24, 896, 4864, 14, 2, allQ8_0, false, false},
	{"0.5B-Q4_K_M", 24, 896, 4864, 14, 2, q4KM, false, false},
	{"1.5B-Q8_0", 28, 1536, 8960, 12, 2, allQ8_0, false, false},
	{"1.5B-Q4_K_M", 28, 1536, 8960, 12, 2, q4KM, false, false},
	{"0.5B-BF16", 24, 896, 4864, 14, 2, allBF16, false, false},
	{"1.5B-BF16", 28, 1536, 8960, 12, 2, allBF16, false, false},
	{"0.5B-BF16-hf", 24, 896, 4864, 14, 2, allBF16, true, false},
	{"1.5B-BF16-hf", 28, 1536, 8960, 12, 2, allBF16, true, false},
	{"0.5B-BF16-hf-f16", 24, 896, 4864, 14, 2, allBF16, true, true},
	{"1.5B-BF16-hf-f16", 28, 1536, 8960, 12, 2, allBF16, true, true},
}

// loadSynth loads synthCases[i] with its numerics and a context of ctx
// positions.
func loadSynth(b testing.TB, i, ctx int) (*cuda.Model, *model.Config) {
	return loadSynthSlots(b, i, ctx, 1)
}

// loadSynthSlots is loadSynth with slots KV caches.
func loadSynthSlots(b testing.TB, i, ctx, slots int) (*cuda.Model, *model.Config) {
	s := synthCases[i]
	cfg := model.Config{Arch: model.ArchQwen2, VocabSize: 151936, MaxPositions: 32768, RopeTheta: 1e6,
		RMSNormEps: 1e-6, AttentionBias: true, TieWordEmbeddings: true, BOSTokenID: -1}
	cfg.NumLayers, cfg.HiddenSize, cfg.IntermediateSize = s.layers, s.h, s.ffn
	cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim = s.heads, s.kvHds, s.h/s.heads
	num := cpu.Numerics{KVCacheF16: true, FlashAttention: true, GGMLOps: true, Rope: cpu.RopeGGML}
	if s.hf {
		num = cpu.Numerics{KVCacheF16: s.f16}
	}
	g, err := cuda.Load(synthModel(&cfg, s.mix), cuda.Options{Context: ctx, Numerics: num, Slots: slots})
	if err != nil {
		b.Fatal(err)
	}
	return g, &cfg
}

// BenchmarkDecodeSynthetic times the graph decode step (positions 0..127,
// as llama-bench's tg128) on random models of Qwen2.5-Coder-0.5B and -1.5B
// dimensions (synthCases).
func BenchmarkDecodeSynthetic(b *testing.B) {
	skipWithoutGPU(b)
	for i, s := range synthCases {
		b.Run(s.name, func(b *testing.B) {
			g, cfg := loadSynth(b, i, 512)
			defer g.Close()
			timeDecode(b, g, cfg, 16)
		})
	}
}

// timeDecode times b.N greedy graph decode steps at positions 0..127 (as
// llama-bench's tg128, each step's token chosen on the device) after warm
// untimed ones, and reports tokens a second.
func timeDecode(b *testing.B, g *cuda.Model, cfg *model.Config, warm int) {
	tok := 9707
	var err error
	for p := 0; p < warm; p++ {
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
}

// BenchmarkDecodeHostGap times BenchmarkDecodeSynthetic's step three ways
// on the GGUF synthetic models: as decode runs it (DecodeArgmax, which sends
// step n+1 before it reads step n's token: ahead.go), with nothing sent
// ahead (APR_CUDA_TUNE nopipe: the host reads each step's token before it
// sends the next step), and with the steps sent back to back and one wait
// at the end (DecodeNoRead: the same graph, a fixed token), the bound of
// what sending ahead can save.
func BenchmarkDecodeHostGap(b *testing.B) {
	skipWithoutGPU(b)
	for _, i := range []int{1, 3} {
		b.Run(synthCases[i].name, func(b *testing.B) {
			g, cfg := loadSynth(b, i, 512)
			defer g.Close()
			for round := 1; round <= 2; round++ {
				b.Run(fmt.Sprintf("round=%d/read", round), func(b *testing.B) { timeDecode(b, g, cfg, 8) })
				b.Run(fmt.Sprintf("round=%d/nopipe", round), func(b *testing.B) {
					defer cuda.SetTune("nopipe")()
					timeDecode(b, g, cfg, 8)
				})
				b.Run(fmt.Sprintf("round=%d/noread", round), func(b *testing.B) {
					for p := range 8 {
						if err := g.DecodeNoRead(9707, p); err != nil {
							b.Fatal(err)
						}
					}
					if err := g.Wait(); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					for n := 0; n < b.N; n++ {
						if err := g.DecodeNoRead(9707, n%128); err != nil {
							b.Fatal(err)
						}
					}
					if err := g.Wait(); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
				})
			}
		})
	}
}

// BenchmarkPrefillSynthetic times Forward of a 512-token prompt (as
// llama-bench's pp512, logits of the last row only) on the synthetic models.
func BenchmarkPrefillSynthetic(b *testing.B) {
	skipWithoutGPU(b)
	const n = 512
	for i, s := range synthCases {
		b.Run(s.name, func(b *testing.B) {
			g, cfg := loadSynth(b, i, n)
			defer g.Close()
			timePrompt(b, g, cfg, n)
		})
	}
}

// timePrompt times b.N Forward calls of an n-token prompt (logits of the
// last row only) after one untimed, and reports prompt tokens a second.
func timePrompt(b *testing.B, g *cuda.Model, cfg *model.Config, n int) {
	rows := make([]cuda.Row, n)
	for p := range rows {
		rows[p] = cuda.Row{Token: (p * 7919) % cfg.VocabSize, Pos: p, Logits: p == n-1}
	}
	logits := make([]float32, cfg.VocabSize)
	if err := g.Forward(rows, logits); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.Forward(rows, logits); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkPrefillLong times prompts of 4,096 and 16,384 tokens (as
// llama-bench's pp4096 and pp16384; passes of at most 512 rows) on the
// synthetic Q4_K_M and Q8_0 models (GGUF numerics, F16 cache) and the
// BF16 ones with transformers' numerics (-hf: float32 cache), one loaded
// model a size: the default (long passes on attn_mma_f16 / attn_mma in
// key ranges of attnMMASplit, passes of 512 rows), other ranges
// (mmasplit=N, 0: none), passes of the attention scratch's rows
// (smallchunks: 338 at 1.5B's 16,384 + 1 positions; a model of its own)
// and, for GGUF, ggml's tiled kernel (noattnmma16).
func BenchmarkPrefillLong(b *testing.B) {
	skipWithoutGPU(b)
	for i, s := range synthCases {
		if strings.Contains(s.name, "BF16") && !s.hf {
			continue
		}
		variants := []string{"", "mmasplit=0", "mmasplit=512", "mmasplit=2048", "smallchunks"}
		if !s.hf {
			variants = append(variants, "noattnmma16")
		}
		for _, n := range []int{4096, 16384} {
			b.Run(fmt.Sprintf("%s/pp%d", s.name, n), func(b *testing.B) {
				g, cfg := loadSynth(b, i, n)
				defer g.Close()
				for _, v := range variants {
					name := v
					if name == "" {
						name = "default"
					}
					b.Run(name, func(b *testing.B) {
						defer cuda.SetTune(v)()
						if v == "smallchunks" { // a choice made at load
							g, cfg := loadSynth(b, i, n)
							defer g.Close()
							timePrompt(b, g, cfg, n)
							return
						}
						timePrompt(b, g, cfg, n)
					})
				}
			})
		}
	}
}

// BenchmarkPrefillVariants times BenchmarkPrefillSynthetic's pp512 on the
// BF16 models with transformers' numerics (what `bench -gpu` runs for
// SafeTensors) under APR_CUDA_TUNE choices in one process, so that every
// choice is timed on one loaded model and in the same run as the default:
// the stacked cuBLAS products and RMSNorm's split (nostack,nonormsplit),
// the tensor-core attention (noattnmma) and its 64-row blocks
// (attnmma64), two rounds each.
func BenchmarkPrefillVariants(b *testing.B) {
	skipWithoutGPU(b)
	const n = 512
	variants := []string{"", "nostack,nonormsplit", "noattnmma", "nostack,nonormsplit,noattnmma", "attnmma64", "stackall"}
	for _, i := range []int{7, 6} {
		b.Run(synthCases[i].name, func(b *testing.B) {
			g, cfg := loadSynth(b, i, n)
			defer g.Close()
			for round := 1; round <= 2; round++ {
				for _, v := range variants {
					name := v
					if name == "" {
						name = "default"
					}
					b.Run(fmt.Sprintf("round=%d/%s", round, name), func(b *testing.B) {
						defer cuda.SetTune(v)()
						timePrompt(b, g, cfg, n)
					})
				}
			}
		})
	}
}
