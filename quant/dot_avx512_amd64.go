//go:build !purego

package quant

import (
	"golang.org/x/sys/cpu"

	"github.com/apr-llm/apr/tensor"
)

// hasAVX512VNNI selects the AVX-512 VNNI kernels of dot_avx512_amd64.s (Ice Lake
// and later Intel server CPUs, AMD Zen 4 and later): EVEX VPDPBUSD and
// VPDPWSSD on ymm registers (AVX512VL), byte masks (AVX512BW). They also
// use the AVX2/F16C instructions of hasAVX2.
var hasAVX512VNNI = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI

// The four-row kernels dot rows weight rows (a positive multiple of four),
// stride bytes apart, with one activation of nb > 0 blocks into
// out[0:rows].

//go:noescape
func q8_0DotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)

//go:noescape
func q5_0DotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)

//go:noescape
func q4_0DotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)

// The super-block kernels take any positive number of rows and nb > 0.

//go:noescape
func q4KDotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)

//go:noescape
func q5KDotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)

//go:noescape
func q6KDotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)

// vnniKernel is a VNNI row kernel with its block geometry.
type vnniKernel struct {
	k     rowKernel
	block int // elements per block
	four  bool
}

// vnniKernels are the VNNI kernels by weight type.
var vnniKernels = map[tensor.DType]vnniKernel{
	tensor.Q8_0: {q8_0DotRowsVNNI, qk, true},
	tensor.Q5_0: {q5_0DotRowsVNNI, qk, true},
	tensor.Q4_0: {q4_0DotRowsVNNI, qk, true},
	tensor.Q4_K: {q4KDotRowsVNNI, qkK, false},
	tensor.Q5_K: {q5KDotRowsVNNI, qkK, false},
	tensor.Q6_K: {q6KDotRowsVNNI, qkK, false},
}

// useVNNI installs the VNNI kernels (called by init when the CPU has them).
func useVNNI() {
	for dt, v := range vnniKernels {
		kernels[dt].dot = v.dot
		kernels[dt].rows = v.rows
	}
}

// rows runs the kernel over rows lo..hi-1 (validated by DotRows). A
// four-row kernel takes the whole groups of four; a last partial group is
// computed as the four rows ending at hi (recomputing up to three), and a
// range of fewer than four rows row by row, each as four copies of itself
// (stride 0).
func (v vnniKernel) rows(w []byte, stride, lo, hi int, act []byte, n int, out []float32) {
	rows, nb := hi-lo, n/v.block
	if rows <= 0 {
		return
	}
	if nb == 0 {
		clear(out[:rows])
		return
	}
	if !v.four {
		v.k(&w[lo*stride], stride, &act[0], nb, &out[0], rows)
		return
	}
	full := rows &^ 3
	if full > 0 {
		v.k(&w[lo*stride], stride, &act[0], nb, &out[0], full)
	}
	if full == rows {
		return
	}
	var tmp [4]float32
	if full > 0 {
		v.k(&w[(hi-4)*stride], stride, &act[0], nb, &tmp[0], 4)
		copy(out[full:rows], tmp[4-(rows-full):])
		return
	}
	for r := range rows {
		v.k(&w[(lo+r)*stride], 0, &act[0], nb, &tmp[0], 4)
		out[r] = tmp[0]
	}
}

// dot is the kernel on one row.
func (v vnniKernel) dot(w, act []byte, n int) float32 {
	var out [1]float32
	v.rows(w, 0, 0, 1, act, n, out[:])
	return out[0]
}
