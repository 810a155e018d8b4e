package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// portableDots are the Go kernels that the assembly ones must agree with.
var portableDots = map[tensor.DType]dotFunc{
	tensor.F32: dotF32F32, tensor.F16: dotF16F32, tensor.BF16: dotBF16F32,
	tensor.Q4_0: dotQ4_0, tensor.Q5_0: dotQ5_0, tensor.Q8_0: dotQ8_0,
	tensor.Q4_K: dotQ4K, tensor.Q5_K: dotQ5K, tensor.Q6_K: dotQ6K,
}

// randomWeights returns a row of n weights of type dt: quantized from
// normal floats when raw is false, otherwise random bytes (every quant
// pattern, extremes included) with sane half-precision scales.
func randomWeights(t *testing.T, rng *rand.Rand, dt tensor.DType, n int, raw bool) []byte {
	t.Helper()
	if !raw || !dt.Quantized() {
		x := randomRow(rng, n)
		for i := range x {
			x[i] *= 3
		}
		return mustQuantize(t, dt, x, false)
	}
	w := mustQuantize(t, dt, make([]float32, n), false)
	for i := range w {
		w[i] = byte(rng.Uint32())
	}
	bs, _ := dt.RowBytes(map[bool]int{true: qkK, false: qk}[dt >= tensor.Q2_K])
	half := func(b []byte) { putF16(b, float32(rng.Float64()*0.1+0.001)) }
	for off := 0; off < len(w); off += bs {
		b := w[off : off+bs]
		switch dt {
		case tensor.Q4_K, tensor.Q5_K:
			half(b[0:])
			half(b[2:])
		case tensor.Q6_K:
			half(b[208:])
		default:
			half(b[0:])
		}
	}
	return w
}

// TestFastDotsMatchPortable compares every assembly row kernel with its
// portable version on random rows: quantized from floats and raw random
// bytes. The integer block sums are exact, so the results may differ only
// by float summation order.
func TestFastDotsMatchPortable(t *testing.T) {
	if !hasAVX2 {
		t.Log("no AVX2+FMA+F16C: the portable kernels run, nothing to compare")
		return
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for dt, ref := range portableDots {
		fast := fastDots[dt]
		if fast == nil {
			t.Fatalf("%v: no fast kernel", dt)
		}
		sizes := []int{0, 32, 224, 896, 4096}
		if dt >= tensor.Q2_K {
			sizes = []int{0, 256, 768, 4864}
		} else if !dt.Quantized() {
			sizes = []int{0, 1, 7, 31, 33, 64, 100, 896}
		}
		for _, n := range sizes {
			for _, raw := range []bool{false, true} {
				w := randomWeights(t, rng, dt, n, raw)
				x := randomRow(rng, n)
				act := mustQuantize(t, VecDotType(dt), x, true)
				want, got := ref(w, act, n), fast(w, act, n)
				// Tolerance: float32 rounding over the magnitude of the terms.
				deq := make([]float32, n)
				if err := Dequantize(dt, w, deq); err != nil {
					t.Fatal(err)
				}
				var mag float64
				for i := range deq {
					mag += math.Abs(float64(deq[i]) * float64(x[i]))
				}
				if d := math.Abs(float64(got - want)); d > 1e-5*mag+1e-6 || math.IsNaN(float64(got)) {
					t.Errorf("%v n=%d raw=%v: fast %v, portable %v (|diff| %g, magnitude %g)", dt, n, raw, got, want, d, mag)
				}
			}
		}
	}
}

// TestFloatVectorKernels compares the exported float kernels with their
// portable versions for lengths around the vector widths.
func TestFloatVectorKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 5, 8, 9, 31, 32, 33, 64, 65, 128, 1000} {
		a, b := randomRow(rng, n), randomRow(rng, n)
		h := make([]uint16, n)
		for i := range h {
			h[i] = tensor.F32ToF16(a[i])
		}
		var mag float64
		for i := range a {
			mag += math.Abs(float64(a[i] * b[i]))
		}
		tol := 1e-5*mag + 1e-6
		tests := []struct {
			name      string
			got, want float32
		}{
			{"DotF32", DotF32(a, b), dotF32Generic(a, b)},
			{"DotF16", DotF16(h, b), dotF16Generic(h, b)},
		}
		for _, tc := range tests {
			if d := math.Abs(float64(tc.got - tc.want)); d > tol {
				t.Errorf("%s n=%d: %v, portable %v", tc.name, n, tc.got, tc.want)
			}
		}
		p := float32(rng.NormFloat64())
		for _, f16 := range []bool{false, true} {
			o1, o2 := append([]float32(nil), b...), append([]float32(nil), b...)
			if f16 {
				AxpyF16(o1, p, h)
				axpyF16Generic(o2, p, h)
			} else {
				AxpyF32(o1, p, a)
				axpyF32Generic(o2, p, a)
			}
			for i := range o1 {
				if d := math.Abs(float64(o1[i] - o2[i])); d > 1e-6*(1+math.Abs(float64(o2[i]))) {
					t.Fatalf("Axpy f16=%v n=%d [%d]: %v, portable %v", f16, n, i, o1[i], o2[i])
				}
			}
		}
	}
}

// TestDotRowsMatchPortable checks DotRows (the multi-row assembly kernels
// where they exist) against the portable kernel row by row, with padded
// rows and sub-ranges.
func TestDotRowsMatchPortable(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for dt, ref := range portableDots {
		n := 512
		need, _ := dt.RowBytes(n)
		for _, stride := range []int{need, need + 6} {
			const rows = 9
			w := make([]byte, rows*stride)
			for r := range rows {
				copy(w[r*stride:], randomWeights(t, rng, dt, n, r%2 == 1))
			}
			x := randomRow(rng, n)
			act := mustQuantize(t, VecDotType(dt), x, true)
			for _, lh := range [][2]int{{0, rows}, {2, 7}, {4, 5}, {3, 3}} {
				lo, hi := lh[0], lh[1]
				out := make([]float32, hi-lo+1)
				out[hi-lo] = 42
				if err := DotRows(dt, w, stride, lo, hi, act, n, out); err != nil {
					t.Fatal(err)
				}
				if out[hi-lo] != 42 {
					t.Errorf("%v rows [%d,%d): wrote past the output", dt, lo, hi)
				}
				for r := lo; r < hi; r++ {
					want := ref(w[r*stride:r*stride+need], act, n)
					if d := math.Abs(float64(out[r-lo] - want)); d > 1e-4*(1+math.Abs(float64(want))) {
						t.Errorf("%v stride %d row %d: %v, portable %v", dt, stride, r, out[r-lo], want)
					}
				}
			}
		}
	}
}
