package quant

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// TestQuantizeActivationFastMatches checks QuantizeActivationFast against
// QuantizeActivation byte for byte on finite inputs of several scales and
// lengths (zero blocks included), and that it rejects wrong lengths.
func TestQuantizeActivationFastMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, vt := range []tensor.DType{tensor.Q8_0, tensor.Q8_1, tensor.Q8_K, tensor.F16} {
		for _, n := range []int{256, 1536, 4864} {
			for _, scale := range []float64{0, 1e-3, 1, 300} {
				x := randomRow(rng, n)
				for i := range x {
					x[i] *= float32(scale)
				}
				want := mustQuantize(t, vt, x, true)
				got := make([]byte, len(want))
				if err := QuantizeActivationFast(vt, x, got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%v n=%d scale %g: bytes differ from QuantizeActivation", vt, n, scale)
				}
			}
		}
		if err := QuantizeActivationFast(vt, make([]float32, 256), make([]byte, 7)); err == nil {
			t.Errorf("%v: wrong destination length accepted", vt)
		}
	}
}

// BenchmarkQuantizeActivationFast measures QuantizeActivationFast on a
// 4096-long activation (compare BenchmarkQuantizeActivation).
func BenchmarkQuantizeActivationFast(b *testing.B) {
	const n = 4096
	x := randomRow(rand.New(rand.NewPCG(5, 6)), n)
	for _, vt := range []tensor.DType{tensor.Q8_0, tensor.Q8_K} {
		b.Run(vt.String(), func(b *testing.B) {
			act := mustQuantize(b, vt, x, true)
			b.SetBytes(4 * n)
			for b.Loop() {
				if err := QuantizeActivationFast(vt, x, act); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
