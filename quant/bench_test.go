package quant

import (
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// benchTypes are the weight types with a dot product.
var benchTypes = []tensor.DType{
	tensor.F32, tensor.F16, tensor.BF16,
	tensor.Q4_0, tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q8_0, tensor.IQ4_NL,
	tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_XS,
}

func randomRow(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// mustQuantize encodes x as dt, failing the benchmark or test on error.
func mustQuantize(tb testing.TB, dt tensor.DType, x []float32, activation bool) []byte {
	tb.Helper()
	nb, err := dt.RowBytes(len(x))
	if err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, nb)
	if activation {
		err = QuantizeActivation(dt, x, b)
	} else {
		err = Quantize(dt, x, b)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkVecDot measures one 4096-long row times a quantized activation;
// the throughput is in bytes of weights.
func BenchmarkVecDot(b *testing.B) {
	const n = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	x := randomRow(rng, n)
	for _, dt := range benchTypes {
		b.Run(dt.String(), func(b *testing.B) {
			w := mustQuantize(b, dt, randomRow(rng, n), false)
			act := mustQuantize(b, VecDotType(dt), x, true)
			b.SetBytes(int64(len(w)))
			var sink float32
			for b.Loop() {
				sink += VecDot(dt, w, act, n)
			}
			_ = sink
		})
	}
}

// BenchmarkDequantize measures decoding one 4096-long row to float32.
func BenchmarkDequantize(b *testing.B) {
	const n = 4096
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range benchTypes {
		b.Run(dt.String(), func(b *testing.B) {
			w := mustQuantize(b, dt, randomRow(rng, n), false)
			out := make([]float32, n)
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				if err := Dequantize(dt, w, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQuantizeActivation measures quantizing a 4096-long activation.
func BenchmarkQuantizeActivation(b *testing.B) {
	const n = 4096
	x := randomRow(rand.New(rand.NewPCG(5, 6)), n)
	for _, vt := range []tensor.DType{tensor.F32, tensor.Q8_0, tensor.Q8_1, tensor.Q8_K} {
		b.Run(vt.String(), func(b *testing.B) {
			act := mustQuantize(b, vt, x, true)
			b.SetBytes(4 * n)
			for b.Loop() {
				if err := QuantizeActivation(vt, x, act); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDotRows measures a 256-row matrix-vector product through
// DotRows (one call, as the CPU backend makes it when decoding) with rows
// of 896 (Qwen2.5-0.5B's hidden size; 1024 for the K-quants).
func BenchmarkDotRows(b *testing.B) {
	const rows = 256
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []tensor.DType{tensor.Q4_0, tensor.Q5_0, tensor.Q8_0, tensor.Q4_K, tensor.Q6_K} {
		n := 896
		if dt >= tensor.Q2_K {
			n = 1024
		}
		b.Run(dt.String(), func(b *testing.B) {
			rb, _ := dt.RowBytes(n)
			w := make([]byte, 0, rows*rb)
			for range rows {
				w = append(w, mustQuantize(b, dt, randomRow(rng, n), false)...)
			}
			act := mustQuantize(b, VecDotType(dt), randomRow(rng, n), true)
			out := make([]float32, rows)
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				if err := DotRows(dt, w, rb, 0, rows, act, n, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
