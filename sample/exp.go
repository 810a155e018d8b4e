package sample

import "math"

// expBits is log2 of the size of the table of 2^(j/256).
const expBits = 8

// expTable holds 2^(j/256), j = 0..255, each correctly rounded but for
// math.Exp2's own error (below one ulp).
var expTable = func() (t [1 << expBits]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / (1 << expBits))
	}
	return t
}()

const (
	expScale = (1 << expBits) / math.Ln2
	// expLn2Hi + expLn2Lo = ln 2 / 256 (fdlibm's split of ln 2, as in
	// math.Exp): the high part has 32 significant bits, so k*expLn2Hi is
	// exact for |k| < 2^20.
	expLn2Hi = 6.93147180369123816490e-01 / (1 << expBits)
	expLn2Lo = 1.90821492927058770002e-10 / (1 << expBits)
	// expRound is 1.5 * 2^52: adding it and taking it away rounds a
	// float64 of magnitude below 2^51 to an integer.
	expRound = 0x1.8p52
)

// expInto replaces every d in ds, -708 < d <= 0, by exp(d), within about
// two ulps of math.Exp (TestFastExp measures it): d = (256m + j) ln2/256 + r
// with |r| <= ln2/512, exp(d) = 2^m * 2^(j/256) * exp(r), exp(r) by a
// degree-4 Taylor polynomial (truncation r^5/120 < 2^-54). Its loop has no
// branch and no call: the sampler takes it for every candidate of a large
// vocabulary.
func expInto(ds []float64) {
	for i, d := range ds {
		y := d*expScale + expRound
		kf := y - expRound // d*256/ln 2 rounded to an integer, exactly
		k := int64(kf)
		r := (d - kf*expLn2Hi) - kf*expLn2Lo
		q := r * (1 + r*(1.0/2+r*(1.0/6+r*(1.0/24))))
		tj := expTable[k&(1<<expBits-1)]
		scale := math.Float64frombits(uint64(1023+(k>>expBits)) << 52)
		ds[i] = (tj + tj*q) * scale
	}
}

// fastExp is expInto for one value.
func fastExp(d float64) float64 {
	v := [1]float64{d}
	expInto(v[:])
	return v[0]
}
