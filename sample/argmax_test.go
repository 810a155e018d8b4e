package sample

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestArgmaxMatchesReference compares the eight-lane Argmax with the
// scalar loop it replaced on hand-made rows (NaN first and later, -Inf,
// signed zeros, ties across lanes, lengths around multiples of 8) and on
// random rows with NaNs and ties mixed in.
func TestArgmaxMatchesReference(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	rows := map[string][]float32{
		"empty":           {},
		"one":             {3},
		"NaN first":       {nan, 1, 2},
		"NaN later":       {1, nan, 2, nan},
		"all -Inf":        {-inf, -inf, -inf},
		"+Inf":            {1, inf, 2, inf},
		"signed zeros":    {negZero, 0, negZero},
		"tie across lane": {0, 5, 0, 0, 0, 0, 0, 0, 0, 5},
		"tail max":        {1, 1, 1, 1, 1, 1, 1, 1, 1, 9},
		"nine":            {9, 1, 1, 1, 1, 1, 1, 1, 9},
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 40 {
		row := make([]float32, n*7+1)
		for i := range row {
			row[i] = float32(rng.IntN(9))
			if rng.IntN(10) == 0 {
				row[i] = nan
			}
		}
		rows[string(rune('a'+n))] = row
	}
	for name, row := range rows {
		if got, want := Argmax(row), refArgmax(row); got != want {
			t.Errorf("%s: Argmax %d, reference %d (%v)", name, got, want, row)
		}
	}
}
