package cpu

import "math"

// Elementwise operations as ggml's CPU backend computes them, for GGUF models
// (llama.cpp's numerics); the methods in ops.go follow transformers.

// RMSNormGGML is ggml_compute_forward_rms_norm_f32 (fused with the weight
// multiply): the squares are float32, summed in double; mean and scale are
// float32; y = x*scale*w.
func (b *Backend) RMSNormGGML(dst, x, weight []float32, n int, eps float32) {
	d := len(weight)
	for t := 0; t < n; t++ {
		row := x[t*d : (t+1)*d]
		var sum float64
		for _, v := range row {
			sum += float64(v * v)
		}
		mean := float32(sum / float64(d))
		scale := 1 / float32(math.Sqrt(float64(mean+eps)))
		o := dst[t*d : (t+1)*d]
		for i, v := range row {
			o[i] = v * scale * weight[i]
		}
	}
}

// SiLUMulGGML is ggml_vec_swiglu_f32: gate[i] = silu(gate[i]) * up[i] with
// silu(x) = x / (1 + ggml_v_expf(-x)), the SIMD exponential of ggml's x86
// (AVX2 and AVX-512 give the same values) and ARM builds.
func SiLUMulGGML(gate, up []float32) {
	up = up[:len(gate)]
	m := siluMulGGMLFast(gate, up) // the same values, eight at a time
	siluMulGGMLGeneric(gate[m:], up[m:])
}

// siluMulGGMLGeneric is SiLUMulGGML in Go, element by element.
func siluMulGGMLGeneric(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = g / (1 + GGMLExpf(-g)) * up[i]
	}
}

func fnma32(a, b, c float32) float32 { // -(a*b) + c, fused
	return float32(math.FMA(-float64(a), float64(b), float64(c)))
}

// GGMLExpf is ggml_v_expf (vec.h, adapted from ARM's optimized routines):
// max error about 1.5 ulp, so its last bit differs from expf's.
func GGMLExpf(x float32) float32 {
	const r = 0x1.8p23
	z := fma32(x, 0x1.715476p+0, r)
	n := z - r
	bb := fnma32(n, 0x1.7f7d1cp-20, fnma32(n, 0x1.62e4p-1, x))
	u := bb * bb
	j := fma32(
		fma32(fma32(0x1.0e4020p-7, bb, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, bb, 0x1.fffdb6p-2)),
		u,
		fma32(0x1.ffffecp-1, bb, 1))
	if abs := float32(math.Abs(float64(n))); abs > 192 {
		if n <= 0 {
			return 0
		}
		return float32(math.Inf(1))
	}
	return float32(math.Ldexp(float64(j), int(n)))
}
