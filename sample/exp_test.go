package sample

import (
	"math"
	"testing"
)

// TestFastExp compares fastExp with math.Exp on a dense grid of the range
// the sampler uses (0 down to -negligible) and a few points beyond: at
// most 2 ulps apart, and exp(0) exactly 1 (the best candidate's t).
func TestFastExp(t *testing.T) {
	if got := fastExp(0); got != 1 {
		t.Fatalf("fastExp(0) = %v, want 1", got)
	}
	worst := 0.0
	check := func(d float64) {
		got, want := fastExp(d), math.Exp(d)
		ulp := math.Nextafter(want, math.Inf(1)) - want
		if e := math.Abs(got-want) / ulp; e > worst {
			worst = e
			if e > 2 {
				t.Fatalf("fastExp(%v) = %v, math.Exp %v: %.1f ulps", d, got, want, e)
			}
		}
	}
	for i := 0; i <= 4_000_000; i++ {
		check(-negligible * float64(i) / 4_000_000)
	}
	for _, d := range []float64{-1e-300, -math.SmallestNonzeroFloat64, -100, -700, -707.5} {
		check(d)
	}
	t.Logf("largest error %.2f ulps", worst)
}
