package sample

// Argmax returns the index of the largest logit (the first one on ties, as
// torch.argmax does). NaN logits never win; a NaN at index 0 returns 0.
//
// It finds the largest value with eight independent running maxima, then
// the first index that holds it: no chain of dependent compares, and each
// lane's compare-and-keep is a branch that is almost never taken, so well
// predicted (the builtin max, branch-free but with NaN and -0 fix-ups,
// measured twice as slow).
func Argmax(logits []float32) int {
	if len(logits) == 0 || logits[0] != logits[0] {
		return 0
	}
	return firstIndex(logits, maxValue(logits))
}

// firstIndex returns the first index that holds v; 0 when none does.
func firstIndex(logits []float32, v float32) int {
	for i, l := range logits {
		if l == v {
			return i
		}
	}
	return 0
}

// maxValue returns the largest logit that is not NaN; -Inf when there is
// none.
func maxValue(logits []float32) float32 {
	var m [8]float32
	for j := range m {
		m[j] = float32(negInf)
	}
	i := 0
	for ; i+8 <= len(logits); i += 8 {
		v := logits[i : i+8 : i+8]
		m[0] = maxNum(m[0], v[0])
		m[1] = maxNum(m[1], v[1])
		m[2] = maxNum(m[2], v[2])
		m[3] = maxNum(m[3], v[3])
		m[4] = maxNum(m[4], v[4])
		m[5] = maxNum(m[5], v[5])
		m[6] = maxNum(m[6], v[6])
		m[7] = maxNum(m[7], v[7])
	}
	for ; i < len(logits); i++ {
		m[0] = maxNum(m[0], logits[i])
	}
	return maxNum(maxNum(maxNum(m[0], m[1]), maxNum(m[2], m[3])), maxNum(maxNum(m[4], m[5]), maxNum(m[6], m[7])))
}

// maxNum returns the larger of a and b, a when b is NaN (a is never NaN).
func maxNum(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}
