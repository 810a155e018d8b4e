package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSiLUMulGGMLFastMatchesGo checks the vectorised SiLUMulGGML against
// its Go loop bit for bit (NaN for NaN): random gates of every scale, a
// sweep of float32 bit patterns (subnormal, saturated and non-finite
// exponentials included) and lengths around the vector width.
func TestSiLUMulGGMLFastMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	var gates []float32
	for range 1 << 14 {
		gates = append(gates, float32(rng.NormFloat64()*math.Pow(10, rng.Float64()*4-2)))
	}
	for b := uint64(0); b < 1<<32; b += 65521 {
		gates = append(gates, math.Float32frombits(uint32(b)))
	}
	gates = append(gates, 0, float32(math.Copysign(0, -1)), 87, -87, 88.7, -88.7, 104, -104, 133, -133, 192, -192, 200, -200,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()))
	for _, n := range []int{len(gates), 1, 7, 8, 9, 17} {
		g := append([]float32(nil), gates[:n]...)
		up := make([]float32, n)
		for i := range up {
			up[i] = float32(rng.NormFloat64())
		}
		want := append([]float32(nil), g...)
		siluMulGGMLGeneric(want, up)
		SiLUMulGGML(g, up)
		for i := range g {
			if math.Float32bits(g[i]) != math.Float32bits(want[i]) && !(g[i] != g[i] && want[i] != want[i]) {
				t.Fatalf("n=%d gate %g (%#08x) up %g: %g (%#08x), Go %g (%#08x)", n, gates[i], math.Float32bits(gates[i]), up[i],
					g[i], math.Float32bits(g[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
}
