package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// randomMatrix quantizes rows x cols normal weights as dt.
func randomMatrix(tb testing.TB, rng *rand.Rand, dt tensor.DType, rows, cols int) *Matrix {
	tb.Helper()
	nb, err := dt.RowBytes(cols)
	if err != nil {
		tb.Fatal(err)
	}
	x := make([]float32, cols)
	data := make([]byte, rows*nb)
	for r := range rows {
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 0.02)
		}
		if err := quant.Quantize(dt, x, data[r*nb:(r+1)*nb]); err != nil {
			tb.Fatal(err)
		}
	}
	m, err := NewMatrix(&tensor.Tensor{Name: "w", DType: dt, Shape: []int{rows, cols}, Data: data})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkPrefillMatMul multiplies a 128-token prompt with matrices of
// Qwen2.5-Coder-0.5B's MLP (gate/up 4864 x 896, down 896 x 4864) on two
// threads, as prompt processing does; the throughput is in multiply-adds.
func BenchmarkPrefillMatMul(b *testing.B) {
	const n = 128
	rng := rand.New(rand.NewPCG(5, 6))
	be := New(2)
	defer be.Close()
	shapes := []struct {
		name       string
		rows, cols int
	}{{"gate", 4864, 896}, {"down", 896, 4864}}
	for _, dt := range []tensor.DType{tensor.Q5_0, tensor.Q8_0, tensor.Q4_K, tensor.Q6_K, tensor.BF16} {
		for _, s := range shapes {
			if dt.Quantized() && dt >= tensor.Q2_K && s.cols%256 != 0 {
				continue
			}
			w := randomMatrix(b, rng, dt, s.rows, s.cols)
			x := make([]float32, n*s.cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			dst := make([]float32, n*s.rows)
			b.Run(dt.String()+"/"+s.name, func(b *testing.B) {
				b.SetBytes(int64(n * s.rows * s.cols))
				for b.Loop() {
					be.MatMul(dst, w, x, n)
				}
			})
		}
	}
}
