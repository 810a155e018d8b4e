package quant

// Float vector kernels for the backend's attention and norms. Each is a
// variable so that dot_amd64.go can swap in the assembly version at start-up;
// the portable versions below stay as the reference the tests compare with.

var (
	dotF32  = dotF32Generic
	dotF16  = dotF16Generic
	axpyF32 = axpyF32Generic
	axpyF16 = axpyF16Generic
)

// DotF32 returns Σ a[i]*b[i] over len(a) elements (b at least as long).
func DotF32(a, b []float32) float32 { return dotF32(a, b) }

// DotF16 returns Σ half(w[i])*x[i] over len(x) elements, w holding IEEE
// halves (at least len(x) of them).
func DotF16(w []uint16, x []float32) float32 { return dotF16(w, x) }

// AxpyF32 sets o[i] += p*v[i] for every i < len(o).
func AxpyF32(o []float32, p float32, v []float32) { axpyF32(o, p, v) }

// AxpyF16 sets o[i] += p*half(v[i]) for every i < len(o).
func AxpyF16(o []float32, p float32, v []uint16) { axpyF16(o, p, v) }

func dotF32Generic(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func dotF16Generic(w []uint16, x []float32) float32 {
	n := len(x)
	w = w[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += halfToF32(w[i]) * x[i]
		s1 += halfToF32(w[i+1]) * x[i+1]
		s2 += halfToF32(w[i+2]) * x[i+2]
		s3 += halfToF32(w[i+3]) * x[i+3]
	}
	for ; i < n; i++ {
		s0 += halfToF32(w[i]) * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyF32Generic(o []float32, p float32, v []float32) {
	v = v[:len(o)]
	for i, x := range v {
		o[i] += p * x
	}
}

func axpyF16Generic(o []float32, p float32, v []uint16) {
	v = v[:len(o)]
	for i, x := range v {
		o[i] += p * halfToF32(x)
	}
}
