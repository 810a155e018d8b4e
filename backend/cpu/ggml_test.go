package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGGMLExpfAccuracy: ggml's SIMD exponential stays within 2 ulp of
// math.Exp over the range softmax and SiLU use.
func TestGGMLExpfAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 100000; i++ {
		x := float32(r.Float64()*160 - 80)
		got, want := GGMLExpf(x), float32(math.Exp(float64(x)))
		ulp := math.Abs(float64(math.Float32bits(got)) - float64(math.Float32bits(want)))
		if ulp > 2 {
			t.Fatalf("GGMLExpf(%g) = %g, exp %g (%v ulp)", x, got, want, ulp)
		}
	}
	if GGMLExpf(-200) != 0 || !math.IsInf(float64(GGMLExpf(200)), 1) {
		t.Fatal("GGMLExpf saturation wrong")
	}
}

// TestFlashAttentionGGMLMatchesAttention: both of ggml's flash-attention
// kernels (F16 under 64 rows, tiled float32 from 64) compute the same
// attention as the plain kernel, up to F16 rounding.
func TestFlashAttentionGGMLMatchesAttention(t *testing.T) {
	b := New(2)
	defer b.Close()
	r := rand.New(rand.NewPCG(5, 6))
	const heads, kvHeads, dim = 4, 2, 64
	for _, n := range []int{1, 7, 64, 80} {
		c := NewKVCache(n, kvHeads*dim, true)
		q := make([]float32, n*heads*dim)
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		pos := make([]int, n)
		caches := make([]*KVCache, n)
		k, v := make([]float32, kvHeads*dim), make([]float32, kvHeads*dim)
		for p := 0; p < n; p++ {
			for i := range k {
				k[i], v[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			}
			c.Store(p, k, v)
			pos[p], caches[p] = p, c
		}
		want := make([]float32, len(q))
		got := make([]float32, len(q))
		b.Attention(want, q, caches, pos, n, heads, kvHeads, dim)
		b.FlashAttentionGGML(got, q, caches, pos, n, heads, kvHeads, dim)
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 5e-3 {
				t.Fatalf("n=%d: value %d: flash %g, plain %g", n, i, got[i], want[i])
			}
		}
	}
}

// TestRMSNormGGML agrees with the float32 RMSNorm to rounding.
func TestRMSNormGGML(t *testing.T) {
	b := New(1)
	defer b.Close()
	x := []float32{1, -2, 3, 0.5, 4, -1, 2, 7}
	w := []float32{1, 2, 0.5, 1, 1, 3, 1, 0.25}
	a, g := make([]float32, 8), make([]float32, 8)
	b.RMSNorm(a, x, w[:4], 2, 1e-6)
	b.RMSNormGGML(g, x, w[:4], 2, 1e-6)
	for i := range a {
		if math.Abs(float64(a[i]-g[i])) > 1e-6*math.Abs(float64(a[i]))+1e-7 {
			t.Fatalf("value %d: ggml %g, float32 %g", i, g[i], a[i])
		}
	}
}
