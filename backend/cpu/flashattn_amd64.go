//go:build !purego

package cpu

import "golang.org/x/sys/cpu"

// hasFA selects the flash-attention assembly of flashattn_amd64.s (AVX2,
// FMA and F16C). Each ...Fast function below runs it when the shapes suit
// and reports whether it did; otherwise the caller runs the portable code.
var hasFA = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// hasFA512 selects the AVX-512 kernels that take two query heads at once.
var hasFA512 = hasFA && cpu.X86.HasAVX512F

//go:noescape
func faRoundF16AVX2(dst, src *float32, n int)

//go:noescape
func faToF16AVX2(dst *uint16, src *float32, n int)

//go:noescape
func faScaleAVX2(dst, src *float32, n int, s float32)

//go:noescape
func faScoresF16AVX2(s *float32, k *uint16, stride int, q *float32, dim, n int, scale float32)

//go:noescape
func faMadF16AVX2(acc *float32, v *uint16, stride int, ms, vs *float32, n, dim int)

//go:noescape
func faScores2F16AVX512(s0, s1 *float32, k *uint16, stride int, q0, q1 *float32, dim, n int, scale float32)

//go:noescape
func faMad2F16AVX512(acc0, acc1 *float32, v *uint16, stride int, ms0, vs0, ms1, vs1 *float32, n, dim int)

//go:noescape
func faTransposeKAVX2(kt *float32, k *uint16, stride, nk8, dim int)

//go:noescape
func faConvertRowsAVX2(dst *float32, v *uint16, stride, rows, dim int)

//go:noescape
func faTileScoresAVX2(kq, q, kt *float32, dim int, scale float32)

//go:noescape
func faTileSoftmaxAVX2(kq *float32, m float32) float64

//go:noescape
func faExpAVX512(x *float32, n int)

//go:noescape
func faSoftmaxArgsAsm(s, ms, vs *float32, n int)

//go:noescape
func faSoftmaxSum2Asm(ms0, ms1, vs0, vs1 *float32, n int) (s0, s1 float32)

//go:noescape
func faTileScores2AVX512(kq0, kq1, q0, q1, kt *float32, dim int, scale float32)

//go:noescape
func faTileMaxAVX2(kq *float32, nk int) float32

//go:noescape
func faExpAVX2(x *float32, n int)

//go:noescape
func faTilePVAVX2(acc, p, vt *float32, stride, nk, dim int, ms float32)

func faRoundF16Fast(dst, src []float32) bool {
	n := len(src)
	if !hasFA || n == 0 || n%8 != 0 {
		return false
	}
	_ = dst[n-1]
	faRoundF16AVX2(&dst[0], &src[0], n)
	return true
}

func toF16Fast(dst []uint16, src []float32) bool {
	n := len(src)
	if !hasFA || n == 0 || n%8 != 0 {
		return false
	}
	_ = dst[n-1]
	faToF16AVX2(&dst[0], &src[0], n)
	return true
}

func faScaleFast(dst, src []float32, s float32) bool {
	n := len(src)
	if !hasFA || n == 0 || n%8 != 0 {
		return false
	}
	_ = dst[n-1]
	faScaleAVX2(&dst[0], &src[0], n, s)
	return true
}

// faScoresF16Fast needs whole 64-wide steps (the dot product's lane order).
func faScoresF16Fast(s []float32, k []uint16, stride int, q []float32, scale float32) bool {
	dim := len(q)
	if !hasFA || len(s) == 0 || dim == 0 || dim%64 != 0 {
		return false
	}
	_ = k[(len(s)-1)*stride+dim-1]
	faScoresF16AVX2(&s[0], &k[0], stride, &q[0], dim, len(s), scale)
	return true
}

func faMadF16Fast(acc []float32, v []uint16, stride int, ms, vs []float32) bool {
	dim, n := len(acc), len(ms)
	if !hasFA || n == 0 || dim == 0 || dim%64 != 0 {
		return false
	}
	_ = vs[n-1]
	_ = v[(n-1)*stride+dim-1]
	faMadF16AVX2(&acc[0], &v[0], stride, &ms[0], &vs[0], n, dim)
	return true
}

func faScores2F16Fast(s0, s1 []float32, k []uint16, stride int, q0, q1 []float32, scale float32) bool {
	dim, n := len(q0), len(s0)
	if !hasFA512 || n == 0 || dim == 0 || dim%64 != 0 {
		return false
	}
	_, _ = s1[n-1], q1[dim-1]
	_ = k[(n-1)*stride+dim-1]
	faScores2F16AVX512(&s0[0], &s1[0], &k[0], stride, &q0[0], &q1[0], dim, n, scale)
	return true
}

func faMad2F16Fast(acc0, acc1 []float32, v []uint16, stride int, ms0, vs0, ms1, vs1 []float32) bool {
	dim, n := len(acc0), len(ms0)
	if !hasFA512 || n == 0 || dim == 0 || dim%64 != 0 {
		return false
	}
	_, _, _, _ = acc1[dim-1], vs0[n-1], ms1[n-1], vs1[n-1]
	_ = v[(n-1)*stride+dim-1]
	faMad2F16AVX512(&acc0[0], &acc1[0], &v[0], stride, &ms0[0], &vs0[0], &ms1[0], &vs1[0], n, dim)
	return true
}

// faTileLoadFast widens the tile's keys in whole groups of 8 and returns
// how many it did; the caller does the rest (and the zero padding).
func faTileLoadFast(kt, vt []float32, k, v []uint16, stride, nk, dim int) int {
	nk8 := nk &^ 7
	if !hasFA || nk8 == 0 || dim == 0 || dim%64 != 0 {
		return 0
	}
	_ = kt[ggmlFATileKV*dim-1]
	_ = vt[nk8*dim-1]
	_ = k[(nk8-1)*stride+dim-1]
	_ = v[(nk8-1)*stride+dim-1]
	faTransposeKAVX2(&kt[0], &k[0], stride, nk8, dim)
	faConvertRowsAVX2(&vt[0], &v[0], stride, nk8, dim)
	return nk8
}

func faTileScoresFast(kq, q, kt []float32, scale float32) bool {
	dim := len(q)
	if !hasFA || dim == 0 || dim%64 != 0 {
		return false
	}
	_ = kq[ggmlFATileKV-1]
	_ = kt[ggmlFATileKV*dim-1]
	faTileScoresAVX2(&kq[0], &q[0], &kt[0], dim, scale)
	return true
}

func faTileScores2Fast(kq0, kq1, q0, q1, kt []float32, scale float32) bool {
	dim := len(q0)
	if !hasFA512 || dim == 0 || dim%64 != 0 {
		return false
	}
	_, _, _ = kq0[ggmlFATileKV-1], kq1[ggmlFATileKV-1], q1[dim-1]
	_ = kt[ggmlFATileKV*dim-1]
	faTileScores2AVX512(&kq0[0], &kq1[0], &q0[0], &q1[0], &kt[0], dim, scale)
	return true
}

func faTileMaxFast(kq []float32, nk int) (float32, bool) {
	if !hasFA {
		return 0, false
	}
	_ = kq[ggmlFATileKV-1]
	return faTileMaxAVX2(&kq[0], nk), true
}

func faTileSoftmaxFast(kq []float32, m float32) (float64, bool) {
	if !hasFA {
		return 0, false
	}
	_ = kq[ggmlFATileKV-1]
	return faTileSoftmaxAVX2(&kq[0], m), true
}

func faTilePVFast(acc, p, vt []float32, stride int, ms float32) bool {
	dim, nk := len(acc), len(p)
	if !hasFA || nk == 0 || dim == 0 || dim%64 != 0 {
		return false
	}
	_ = vt[(nk-1)*stride+dim-1]
	faTilePVAVX2(&acc[0], &p[0], &vt[0], stride, nk, dim, ms)
	return true
}

// faExpFast does the multiple of 8 (AVX-512) or 4 and returns how many it
// did.
func faExpFast(x []float32) int {
	if n := len(x) &^ 7; hasFA512 && n > 0 {
		faExpAVX512(&x[0], n)
		return n
	}
	n := len(x) &^ 3
	if !hasFA || n == 0 {
		return 0
	}
	faExpAVX2(&x[0], n)
	return n
}

// The online softmax's scalar loops run in assembly only for speed (they
// use no vector instruction): Go's compiled loops took 20% of a decode
// step's attention.

func faSoftmaxArgsFast(s, ms, vs []float32) bool {
	n := len(s)
	if !hasFA || n == 0 {
		return false
	}
	_, _ = ms[n-1], vs[n-1]
	faSoftmaxArgsAsm(&s[0], &ms[0], &vs[0], n)
	return true
}

func faSoftmaxSum2Fast(ms0, ms1, vs0, vs1 []float32) (float32, float32, bool) {
	n := len(ms0)
	if !hasFA || n == 0 {
		return 0, 0, false
	}
	_, _, _ = ms1[n-1], vs0[n-1], vs1[n-1]
	s0, s1 := faSoftmaxSum2Asm(&ms0[0], &ms1[0], &vs0[0], &vs1[0], n)
	return s0, s1, true
}
