package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// decodeLayer is one Qwen2.5-0.5B layer's matrices (rows, cols) in the
// order a decode step multiplies them.
var decodeLayer = [][2]int{
	{896, 896}, {128, 896}, {128, 896}, {896, 896}, // q, k, v, o
	{4864, 896}, {4864, 896}, {896, 4864}, // gate, up, down
}

// streamMatrices returns layers x decodeLayer matrices of type dt, far more
// bytes than the last-level cache holds, so that a pass over them streams
// from memory as a decode step does. Rows are quantized from random floats
// once and tiled (the contents do not matter for speed).
func streamMatrices(tb testing.TB, dt tensor.DType, layers int) []*Matrix {
	tb.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var ms []*Matrix
	for l := range layers {
		for _, rc := range decodeLayer {
			rows, cols := rc[0], rc[1]
			if dt.BlockSize() > 32 && cols%dt.BlockSize() != 0 {
				cols = (cols + dt.BlockSize() - 1) / dt.BlockSize() * dt.BlockSize()
			}
			rb, err := dt.RowBytes(cols)
			if err != nil {
				tb.Fatal(err)
			}
			const tile = 8
			pat := make([]byte, tile*rb)
			x := make([]float32, cols)
			for r := range tile {
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				if err := quant.Quantize(dt, x, pat[r*rb:(r+1)*rb]); err != nil {
					tb.Fatal(err)
				}
			}
			data := make([]byte, rows*rb)
			for off := 0; off < len(data); off += len(pat) {
				copy(data[off:], pat)
			}
			m, err := NewMatrix(&tensor.Tensor{Name: fmt.Sprintf("l%d.%dx%d", l, rows, cols), DType: dt, Shape: []int{rows, cols}, Data: data})
			if err != nil {
				tb.Fatal(err)
			}
			ms = append(ms, m)
		}
	}
	return ms
}

// BenchmarkDecodeMatVec measures one-row matrix products over 16 layers of
// 0.5B-shaped matrices (~250 MB in Q8_0, streamed from memory like a decode
// step); MB/s is the weight bytes read.
func BenchmarkDecodeMatVec(b *testing.B) {
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q5_0, tensor.Q4_0, tensor.Q4_K, tensor.Q6_K} {
		ms := streamMatrices(b, dt, 16)
		var bytes int64
		maxRows, maxCols := 0, 0
		for _, m := range ms {
			bytes += int64(len(m.data))
			maxRows, maxCols = max(maxRows, m.Rows), max(maxCols, m.Cols)
		}
		x := randVec(rand.New(rand.NewPCG(5, 6)), maxCols)
		dst := make([]float32, maxRows)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%v/t%d", dt, threads), func(b *testing.B) {
				be := New(threads)
				defer be.Close()
				b.SetBytes(bytes)
				for b.Loop() {
					for _, m := range ms {
						be.MatMul(dst[:m.Rows], m, x[:m.Cols], 1)
					}
				}
			})
		}
	}
}
