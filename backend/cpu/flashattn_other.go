//go:build !amd64 || purego

package cpu

// Where no assembly exists, every flash-attention primitive runs its
// portable code.

func faRoundF16Fast(dst, src []float32) bool { return false }

func toF16Fast(dst []uint16, src []float32) bool { return false }

func faScaleFast(dst, src []float32, s float32) bool { return false }

func faScoresF16Fast(s []float32, k []uint16, stride int, q []float32, scale float32) bool {
	return false
}

func faMadF16Fast(acc []float32, v []uint16, stride int, ms, vs []float32) bool { return false }

func faScores2F16Fast(s0, s1 []float32, k []uint16, stride int, q0, q1 []float32, scale float32) bool {
	return false
}

func faMad2F16Fast(acc0, acc1 []float32, v []uint16, stride int, ms0, vs0, ms1, vs1 []float32) bool {
	return false
}

func faTileLoadFast(kt, vt []float32, k, v []uint16, stride, nk, dim int) int { return 0 }

func faTileScoresFast(kq, q, kt []float32, scale float32) bool { return false }

func faSoftmaxArgsFast(s, ms, vs []float32) bool { return false }

func faSoftmaxSum2Fast(ms0, ms1, vs0, vs1 []float32) (float32, float32, bool) { return 0, 0, false }

func faTileScores2Fast(kq0, kq1, q0, q1, kt []float32, scale float32) bool { return false }

func faTileMaxFast(kq []float32, nk int) (float32, bool) { return 0, false }

func faTileSoftmaxFast(kq []float32, m float32) (float64, bool) { return 0, false }

func faExpFast(x []float32) int { return 0 }

func faTilePVFast(acc, p, vt []float32, stride int, ms float32) bool { return false }

// hasFA and hasFA512 are false: no assembly (the tests switch them like
// the amd64 ones).
var hasFA, hasFA512 = false, false
