package cpu

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// TestPoolRunCoversEveryIndexOnce checks the split for several sizes and
// grains, many times over (late helpers must not run a chunk of the next
// operation twice): every index in exactly one chunk, chunk starts on grain
// bounds, worker ids below the thread count.
func TestPoolRunCoversEveryIndexOnce(t *testing.T) {
	cases := []struct{ total, grain int }{{0, 1}, {1, 1}, {5, 1}, {17, 4}, {1000, 16}, {7, 100}}
	for _, threads := range []int{1, 2, 3, 8} {
		p := NewPool(threads)
		for rep := range 300 {
			tc := cases[rep%len(cases)]
			hits := make([]atomic.Int32, tc.total)
			var workers [8]atomic.Int32
			p.Run(tc.total, tc.grain, func(lo, hi, w int) {
				if lo%tc.grain != 0 {
					t.Errorf("threads %d %+v: chunk starts at %d", threads, tc, lo)
				}
				workers[w].Add(1)
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			for i := range hits {
				if n := hits[i].Load(); n != 1 {
					t.Fatalf("threads %d %+v: index %d ran %d times", threads, tc, i, n)
				}
			}
			for w := range workers {
				if workers[w].Load() > 0 && w >= threads {
					t.Fatalf("threads %d %+v: worker id %d", threads, tc, w)
				}
			}
		}
		p.Close()
	}
}

// BenchmarkPoolRun measures the pool's overhead for an empty operation.
func BenchmarkPoolRun(b *testing.B) {
	p := NewPool(2)
	defer p.Close()
	fn := func(lo, hi, w int) {}
	for b.Loop() {
		p.Run(64, 1, fn)
	}
}

// matrixOf quantizes rows x cols random weights as dt and returns the
// matrix and its dequantized values.
func matrixOf(t *testing.T, rng *rand.Rand, dt tensor.DType, rows, cols int) (*Matrix, []float32) {
	t.Helper()
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	nb, err := dt.RowBytes(cols)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, rows*nb)
	for r := range rows {
		if err := quant.Quantize(dt, x[r*cols:(r+1)*cols], data[r*nb:(r+1)*nb]); err != nil {
			t.Fatal(err)
		}
		if err := quant.Dequantize(dt, data[r*nb:(r+1)*nb], x[r*cols:(r+1)*cols]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := NewMatrix(&tensor.Tensor{Name: "w", DType: dt, Shape: []int{rows, cols}, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return m, x
}

// TestMatMulMatchesFloat64 compares MatMul (quantized activations, row
// blocks, several input rows) with a float64 product of the dequantized
// weights and activations.
func TestMatMulMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	be := New(2)
	defer be.Close()
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q5_0, tensor.Q4_K, tensor.Q6_K} {
		const rows, cols = 37, 512
		w, wf := matrixOf(t, rng, dt, rows, cols)
		for _, n := range []int{1, 3, 20} {
			x := make([]float32, n*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			dst := make([]float32, n*rows)
			be.MatMul(dst, w, x, n)
			// The exact product uses the activation as the kernels see it
			// (rounded to 8-bit blocks for block weights).
			if vt := quant.VecDotType(dt); vt != tensor.F32 {
				ab, _ := vt.RowBytes(cols)
				buf := make([]byte, ab)
				for tk := range n {
					xr := x[tk*cols : (tk+1)*cols]
					if err := quant.QuantizeActivation(vt, xr, buf); err != nil {
						t.Fatal(err)
					}
					if err := quant.Dequantize(vt, buf, xr); err != nil {
						t.Fatal(err)
					}
				}
			}
			for tk := range n {
				for r := range rows {
					var want, mag float64
					for c := range cols {
						p := float64(wf[r*cols+c]) * float64(x[tk*cols+c])
						want += p
						mag += math.Abs(p)
					}
					tol := 1e-5 * mag
					if d := math.Abs(float64(dst[tk*rows+r]) - want); d > tol {
						t.Fatalf("%v n=%d [%d][%d]: %v, want %v (tolerance %g)", dt, n, tk, r, dst[tk*rows+r], want, tol)
					}
				}
			}
		}
	}
}

// naiveAttention is one query head's causal attention in float64.
func naiveAttention(q []float32, keys, vals func(j int) []float32, L int) []float64 {
	scale := 1 / math.Sqrt(float64(len(q)))
	sc := make([]float64, L)
	m := math.Inf(-1)
	for j := range L {
		k := keys(j)
		for i := range q {
			sc[j] += float64(q[i]) * float64(k[i])
		}
		sc[j] *= scale
		m = max(m, sc[j])
	}
	var sum float64
	for j := range sc {
		sc[j] = math.Exp(sc[j] - m)
		sum += sc[j]
	}
	out := make([]float64, len(q))
	for j := range L {
		v := vals(j)
		for i := range out {
			out[i] += sc[j] / sum * float64(v[i])
		}
	}
	return out
}

// TestAttentionMatchesNaive runs grouped-query attention for a batch of
// rows from two sequences (float32 and F16 caches, 1 to 8 heads per KV
// head, fewer jobs than workers and more) against a float64 reference.
func TestAttentionMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, threads := range []int{1, 4} {
		be := New(threads)
		for _, g := range []struct{ heads, kvHeads int }{{2, 1}, {8, 2}, {4, 4}, {14, 2}} {
			for _, f16 := range []bool{false, true} {
				const dim, ctx = 16, 40
				kvDim := g.kvHeads * dim
				caches := []*KVCache{NewKVCache(ctx, kvDim, f16), NewKVCache(ctx, kvDim, f16)}
				stored := [2][][2][]float32{}
				for s, c := range caches {
					for p := range ctx {
						k, v := randVec(rng, kvDim), randVec(rng, kvDim)
						c.Store(p, k, v)
						if f16 {
							roundF16(k)
							roundF16(v)
						}
						stored[s] = append(stored[s], [2][]float32{k, v})
					}
				}
				// Rows: sequence 0 at positions 0, 5, 39; sequence 1 at 12.
				seq, pos := []int{0, 0, 0, 1}, []int{0, 5, 39, 12}
				n := len(pos)
				rowCaches := make([]*KVCache, n)
				for i, s := range seq {
					rowCaches[i] = caches[s]
				}
				q := randVec(rng, n*g.heads*dim)
				out := make([]float32, len(q))
				be.Attention(out, q, rowCaches, pos, n, g.heads, g.kvHeads, dim)
				for tk := range n {
					for h := range g.heads {
						qv := append([]float32(nil), q[(tk*g.heads+h)*dim:][:dim]...)
						if f16 {
							roundF16(qv)
						}
						off := h / (g.heads / g.kvHeads) * dim
						st := stored[seq[tk]]
						want := naiveAttention(qv,
							func(j int) []float32 { return st[j][0][off : off+dim] },
							func(j int) []float32 { return st[j][1][off : off+dim] }, pos[tk]+1)
						got := out[(tk*g.heads+h)*dim:][:dim]
						for i := range want {
							if d := math.Abs(float64(got[i]) - want[i]); d > 1e-5 {
								t.Fatalf("threads %d %+v f16 %v row %d head %d [%d]: %v, want %v", threads, g, f16, tk, h, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
		be.Close()
	}
}

func randVec(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func roundF16(x []float32) {
	for i, v := range x {
		x[i] = tensor.F16ToF32(tensor.F32ToF16(v))
	}
}

// TestSiLUMulMatchesMathExp compares the vectorised SiLU x up with the
// math.Exp version over normal values, large magnitudes (where exp
// overflows or underflows) and lengths around the vector width.
func TestSiLUMulMatchesMathExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	be := New(2)
	defer be.Close()
	for _, n := range []int{1, 7, 8, 9, 64, 1000, 4099} {
		for _, scale := range []float64{1, 10, 200} {
			g, u := randVec(rng, n), randVec(rng, n)
			for i := range g {
				g[i] *= float32(scale)
			}
			want := append([]float32(nil), g...)
			siluMulGeneric(want, u)
			for _, run := range []func(g, u []float32){SiLUMul, func(g, u []float32) { be.SiLUMul(g, u, 1) }} {
				got := append([]float32(nil), g...)
				run(got, u)
				for i := range got {
					if d := math.Abs(float64(got[i] - want[i])); d > 4e-7*math.Abs(float64(want[i]))+1e-30 || math.IsNaN(float64(got[i])) {
						t.Fatalf("n=%d scale %v [%d]: silu(%v)*%v = %v, want %v", n, scale, i, g[i], u[i], got[i], want[i])
					}
				}
			}
		}
	}
}
