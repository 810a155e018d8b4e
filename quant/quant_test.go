package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// ggmlFP32ToFP16 is ggml_compute_fp32_to_fp16 (ggml-impl.h), the portable
// conversion the reference quantizers store scales with.
func ggmlFP32ToFP16(f float32) uint16 {
	base := (fabs(f) * 0x1p+112) * 0x1p-110
	w := math.Float32bits(f)
	shl1w := w + w
	sign := w & 0x80000000
	bias := shl1w & 0xff000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = math.Float32frombits(bias>>1+0x07800000) + base
	bits := math.Float32bits(base)
	expBits := (bits >> 13) & 0x00007c00
	mantBits := bits & 0x00000fff
	nonsign := expBits + mantBits
	if shl1w > 0xff000000 {
		nonsign = 0x7e00
	}
	return uint16(sign>>16) | uint16(nonsign)
}

// TestHalfMatchesGGML pins the half-precision conversions quant relies on
// (tensor.F32ToF16 and F16ToF32) to ggml's own.
func TestHalfMatchesGGML(t *testing.T) {
	check := func(f float32) {
		t.Helper()
		if got, want := tensor.F32ToF16(f), ggmlFP32ToFP16(f); got != want {
			t.Fatalf("F32ToF16(%v = %#08x) = %#04x, ggml %#04x", f, math.Float32bits(f), got, want)
		}
	}
	for h := range 1 << 16 {
		f := tensor.F16ToF32(uint16(h))
		if g := halfToF32(uint16(h)); math.Float32bits(g) != math.Float32bits(f) && !(isNaN32(f) && isNaN32(g)) {
			t.Fatalf("halfToF32(%#04x) = %#08x, tensor.F16ToF32 %#08x", h, math.Float32bits(g), math.Float32bits(f))
		}
		if !isNaN32(f) && tensor.F32ToF16(f) != uint16(h) {
			t.Fatalf("half %#04x does not round-trip", h)
		}
		check(f)
		// Halfway points and their neighbours exercise rounding.
		mid := math.Float32bits(f) + 1<<12
		for d := -1; d <= 1; d++ {
			check(math.Float32frombits(uint32(int64(mid) + int64(d))))
		}
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 1 << 20 {
		check(math.Float32frombits(rng.Uint32()))
	}
}

func isNaN32(f float32) bool { return f != f }

func TestLengthErrors(t *testing.T) {
	tests := []struct {
		name string
		dt   tensor.DType
		n    int
		nb   int
	}{
		{"partial block", tensor.Q4_0, 33, 36},
		{"short source", tensor.Q4_K, 256, 143},
		{"long source", tensor.Q8_0, 32, 35},
		{"unsupported type", tensor.F64, 4, 32},
		{"invalid type", tensor.DType(-3), 4, 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Dequantize(tc.dt, make([]byte, tc.nb), make([]float32, tc.n)); err == nil {
				t.Error("Dequantize: no error")
			}
			if err := Quantize(tc.dt, make([]float32, tc.n), make([]byte, tc.nb)); err == nil {
				t.Error("Quantize: no error")
			}
		})
	}
	if err := QuantizeActivation(tensor.Q4_0, make([]float32, 32), make([]byte, 18)); err == nil {
		t.Error("QuantizeActivation(Q4_0): no error")
	}
	if _, err := DequantizeRowFunc(tensor.I32); err == nil {
		t.Error("DequantizeRowFunc(I32): no error")
	}
}

func TestVecDotPanicsOnMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("VecDot with a short activation did not panic")
		}
	}()
	VecDot(tensor.Q4_0, make([]byte, 18), make([]byte, 33), 32)
}

func TestDotRowsErrors(t *testing.T) {
	w := make([]byte, 4*18)
	act := make([]byte, 34)
	out := make([]float32, 4)
	tests := []struct {
		name             string
		dt               tensor.DType
		w                []byte
		rowBytes, lo, hi int
		act              []byte
		n                int
		out              []float32
	}{
		{"no kernel", tensor.Q8_K, w, 18, 0, 1, act, 32, out},
		{"stride too small", tensor.Q4_0, w, 17, 0, 1, act, 32, out},
		{"rows past the end", tensor.Q4_0, w, 18, 0, 5, act, 32, out},
		{"reversed range", tensor.Q4_0, w, 18, 2, 1, act, 32, out},
		{"negative lo", tensor.Q4_0, w, 18, -1, 1, act, 32, out},
		{"short output", tensor.Q4_0, w, 18, 0, 4, act, 32, out[:3]},
		{"short activation", tensor.Q4_0, w, 18, 0, 1, act[:33], 32, out},
		{"partial block", tensor.Q4_0, w, 18, 0, 1, act, 31, out},
		{"weights shorter than a row", tensor.Q4_0, w[:17], 18, 0, 1, act, 32, out},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := DotRows(tc.dt, tc.w, tc.rowBytes, tc.lo, tc.hi, tc.act, tc.n, tc.out); err == nil {
				t.Error("no error")
			}
		})
	}
	// Padded rows: a stride larger than the row is fine.
	if err := DotRows(tensor.Q4_0, w, 24, 0, 3, act, 32, out); err != nil {
		t.Errorf("padded rows: %v", err)
	}
}

// TestVecDotMatchesDequantized checks every kernel against a float64 dot
// product of the dequantized row and the dequantized activation, on random
// data of a length that is not a power of two.
func TestVecDotMatchesDequantized(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, dt := range benchTypes {
		t.Run(dt.String(), func(t *testing.T) {
			n := 3 * 256
			vt := VecDotType(dt)
			if dt.BlockSize() == 1 {
				n = 3*256 + 3 // exercises the tails of the float kernels
			}
			w := mustQuantize(t, dt, randomRow(rng, n), false)
			act := mustQuantize(t, vt, randomRow(rng, n), true)
			wf, af := make([]float32, n), make([]float32, n)
			if err := Dequantize(dt, w, wf); err != nil {
				t.Fatal(err)
			}
			if err := Dequantize(vt, act, af); err != nil {
				t.Fatal(err)
			}
			var want, mag float64
			for i := range wf {
				want += float64(wf[i]) * float64(af[i])
				mag += math.Abs(float64(wf[i]) * float64(af[i]))
			}
			got := VecDot(dt, w, act, n)
			tol := 1e-5 * mag
			if vt == tensor.Q8_1 {
				// The min term uses Q8_1's s = d*Σq, stored as a half: its
				// rounding is part of ggml's result but not of Dequantize.
				tol = 1e-3 * mag
			}
			if math.Abs(float64(got)-want) > tol {
				t.Errorf("VecDot = %v, float64 reference %v (sum of |products| %v)", got, want, mag)
			}
		})
	}
}

// TestQuantizeOddInputs runs every quantizer on zeros, NaNs, infinities and
// huge values: no panics, and a round trip of zeros gives zeros.
func TestQuantizeOddInputs(t *testing.T) {
	inputs := map[string]float32{
		"zero": 0, "nan": float32(math.NaN()), "inf": float32(math.Inf(1)),
		"huge": 3e38, "tiny": 1e-40,
	}
	for dt := range quantizers {
		for name, v := range inputs {
			x := make([]float32, 256)
			for i := range x {
				x[i] = v
				if i%3 == 0 {
					x[i] = -v
				}
			}
			b := mustQuantize(t, dt, x, false)
			y := make([]float32, len(x))
			if err := Dequantize(dt, b, y); err != nil {
				t.Fatalf("%v %s: %v", dt, name, err)
			}
			if name == "zero" {
				for i, f := range y {
					if f != 0 {
						t.Fatalf("%v: zeros decode to %v at %d", dt, f, i)
					}
				}
			}
		}
	}
}
