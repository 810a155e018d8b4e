//go:build !purego

package quant

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/apr-llm/apr/tensor"
)

// hasAVX2 selects the assembly kernels of dot_amd64.s: AVX2 with FMA and
// F16C (every x86-64-v3 CPU).
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// The 32-element block kernels dot rows weight rows, stride bytes apart,
// with one activation of nb blocks into out[0:rows].

//go:noescape
func q8_0DotRowsAVX2(w *byte, stride int, act *byte, nb int, out *float32, rows int)

//go:noescape
func q4_0DotRowsAVX2(w *byte, stride int, act *byte, nb int, out *float32, rows int)

//go:noescape
func q5_0DotRowsAVX2(w *byte, stride int, act *byte, nb int, out *float32, rows int)

//go:noescape
func q5KBlockAVX2(qh, qs, q8, sm *byte) (isum, summs int32)

//go:noescape
func q6KDotAVX2(w, act *byte, nb int) float32

//go:noescape
func q4KDotAVX2(w, act *byte, nb int) float32

//go:noescape
func f16DotAVX2(w *byte, x *float32, n int) float32

//go:noescape
func bf16DotAVX2(w *byte, x *float32, n int) float32

//go:noescape
func f32DotAVX2(w, x *float32, n int) float32

//go:noescape
func f32AxpyAVX2(o *float32, p float32, v *float32, n int)

//go:noescape
func f16AxpyAVX2(o *float32, p float32, v *byte, n int)

func init() {
	if !hasAVX2 {
		return
	}
	for dt, f := range fastDots {
		kernels[dt].dot = f
	}
	for dt, f := range fastRows {
		kernels[dt].rows = f
	}
	dotF32, dotF16, axpyF32, axpyF16 = dotF32Fast, dotF16Fast, axpyF32Fast, axpyF16Fast
	if hasAVX512VNNI {
		useVNNI()
	}
}

// fastDots are the assembly row kernels by weight type.
var fastDots = map[tensor.DType]dotFunc{
	tensor.F32:  dotF32F32Fast,
	tensor.F16:  dotF16F32Fast,
	tensor.BF16: dotBF16F32Fast,
	tensor.Q4_0: dotQ4_0Fast,
	tensor.Q5_0: dotQ5_0Fast,
	tensor.Q8_0: dotQ8_0Fast,
	tensor.Q4_K: dotQ4KFast,
	tensor.Q5_K: dotQ5KFast,
	tensor.Q6_K: dotQ6KFast,
}

// rowKernel is an assembly kernel over several rows.
type rowKernel func(w *byte, stride int, act *byte, nb int, out *float32, rows int)

// oneRow runs a row kernel on a single row.
func oneRow(k rowKernel, w, act []byte, n int) float32 {
	var out float32
	if n >= qk {
		k(&w[0], 0, &act[0], n/qk, &out, 1)
	}
	return out
}

// manyRows runs a row kernel over rows lo..hi-1 (validated by DotRows).
func manyRows(k rowKernel, w []byte, stride, lo, hi int, act []byte, n int, out []float32) {
	if hi <= lo {
		return
	}
	if n < qk {
		clear(out[:hi-lo])
		return
	}
	k(&w[lo*stride], stride, &act[0], n/qk, &out[0], hi-lo)
}

func dotQ8_0Fast(w, act []byte, n int) float32 {
	if n >= qk {
		_, _ = w[34*(n/qk)-1], act[34*(n/qk)-1]
	}
	return oneRow(q8_0DotRowsAVX2, w, act, n)
}

func dotQ4_0Fast(w, act []byte, n int) float32 {
	if n >= qk {
		_, _ = w[18*(n/qk)-1], act[34*(n/qk)-1]
	}
	return oneRow(q4_0DotRowsAVX2, w, act, n)
}

func dotQ5_0Fast(w, act []byte, n int) float32 {
	if n >= qk {
		_, _ = w[22*(n/qk)-1], act[34*(n/qk)-1]
	}
	return oneRow(q5_0DotRowsAVX2, w, act, n)
}

// fastRows are the multi-row assembly kernels by weight type.
var fastRows = map[tensor.DType]rowsFunc{
	tensor.Q4_0: func(w []byte, stride, lo, hi int, act []byte, n int, out []float32) {
		manyRows(q4_0DotRowsAVX2, w, stride, lo, hi, act, n, out)
	},
	tensor.Q5_0: func(w []byte, stride, lo, hi int, act []byte, n int, out []float32) {
		manyRows(q5_0DotRowsAVX2, w, stride, lo, hi, act, n, out)
	},
	tensor.Q8_0: func(w []byte, stride, lo, hi int, act []byte, n int, out []float32) {
		manyRows(q8_0DotRowsAVX2, w, stride, lo, hi, act, n, out)
	},
}

// scaleMinsK4 unpacks a Q4_K/Q5_K block's twelve scale bytes into eight
// scales followed by eight mins (ggml's utmp shuffle).
func scaleMinsK4(s *[kScl]byte) [16]byte {
	const kmask1, kmask2, kmask3 = 0x3f3f3f3f, 0x0f0f0f0f, 0x03030303
	u0 := leU32(s[0:])
	u1 := leU32(s[4:])
	u2 := leU32(s[8:])
	var out [16]byte
	*(*[4]uint32)(unsafe.Pointer(&out)) = [4]uint32{
		u0 & kmask1,
		u2&kmask2 | (u0>>6&kmask3)<<4,
		u1 & kmask1,
		u2>>4&kmask2 | (u1>>6&kmask3)<<4,
	}
	return out
}

// leU32 reads a little-endian uint32 (amd64 is little-endian).
func leU32(b []byte) uint32 { return *(*uint32)(unsafe.Pointer(&b[0])) }

func dotQ4KFast(w, act []byte, n int) float32 {
	if n < qkK {
		return 0
	}
	_, _ = w[144*(n/qkK)-1], act[292*(n/qkK)-1]
	return q4KDotAVX2(&w[0], &act[0], n/qkK)
}

func dotQ5KFast(w, act []byte, n int) float32 {
	var sum float32
	for i := range n / qkK {
		x := (*[176]byte)(w[176*i:])
		y := (*[292]byte)(act[292*i:])
		sm := scaleMinsK4((*[kScl]byte)(x[4:]))
		isum, summs := q5KBlockAVX2(&x[16], &x[48], &y[4], &sm[0])
		yd := f32(y[0:])
		sum += float32(f16(x[0:])*yd)*float32(isum) - float32(f16(x[2:])*yd)*float32(summs)
	}
	return sum
}

func dotQ6KFast(w, act []byte, n int) float32 {
	if n < qkK {
		return 0
	}
	_, _ = w[210*(n/qkK)-1], act[292*(n/qkK)-1]
	return q6KDotAVX2(&w[0], &act[0], n/qkK)
}

// floatsOf views the first n float32 of little-endian bytes.
func floatsOf(b []byte, n int) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

func dotF32F32Fast(w, act []byte, n int) float32 {
	if n == 0 {
		return 0
	}
	_, _ = w[4*n-1], act[4*n-1]
	return dotF32Fast(floatsOf(w, n), floatsOf(act, n))
}

func dotF16F32Fast(w, act []byte, n int) float32 {
	if n == 0 {
		return 0
	}
	_, _ = w[2*n-1], act[4*n-1]
	return dotF16Fast(unsafe.Slice((*uint16)(unsafe.Pointer(&w[0])), n), floatsOf(act, n))
}

func dotBF16F32Fast(w, act []byte, n int) float32 {
	if n == 0 {
		return 0
	}
	_, _ = w[2*n-1], act[4*n-1]
	m := n &^ 31
	var s float32
	if m > 0 {
		s = bf16DotAVX2(&w[0], (*float32)(unsafe.Pointer(&act[0])), m)
	}
	x := floatsOf(act, n)
	for i := m; i < n; i++ {
		s += bf16(u16(w[2*i:])) * x[i]
	}
	return s
}

func dotF32Fast(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	m := n &^ 31
	var s float32
	if m > 0 {
		s = f32DotAVX2(&a[0], &b[0], m)
	}
	for i := m; i < n; i++ {
		s += a[i] * b[i]
	}
	return s
}

func dotF16Fast(w []uint16, x []float32) float32 {
	n := len(x)
	w = w[:n]
	m := n &^ 31
	var s float32
	if m > 0 {
		s = f16DotAVX2((*byte)(unsafe.Pointer(&w[0])), &x[0], m)
	}
	for i := m; i < n; i++ {
		s += halfToF32(w[i]) * x[i]
	}
	return s
}

func axpyF32Fast(o []float32, p float32, v []float32) {
	n := len(o)
	v = v[:n]
	m := n &^ 7
	if m > 0 {
		f32AxpyAVX2(&o[0], p, &v[0], m)
	}
	for i := m; i < n; i++ {
		o[i] += p * v[i]
	}
}

func axpyF16Fast(o []float32, p float32, v []uint16) {
	n := len(o)
	v = v[:n]
	m := n &^ 7
	if m > 0 {
		f16AxpyAVX2(&o[0], p, (*byte)(unsafe.Pointer(&v[0])), m)
	}
	for i := m; i < n; i++ {
		o[i] += p * halfToF32(v[i])
	}
}
