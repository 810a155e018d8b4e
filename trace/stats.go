package trace

import "math"

// Stats summarise one activation tensor: the finite values' minimum, maximum
// and mean, and how many values were NaN or infinite.
type Stats struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
	NaN  int     `json:"nan"`
	Inf  int     `json:"inf"`
}

// Summarize computes the Stats of x. Min, Max and Mean cover the finite
// values only (all zero when there are none).
func Summarize(x []float32) Stats {
	s := Stats{N: len(x)}
	var sum float64
	finite := 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range x {
		f := float64(v)
		switch {
		case math.IsNaN(f):
			s.NaN++
			continue
		case math.IsInf(f, 0):
			s.Inf++
			continue
		}
		finite++
		sum += f
		lo = min(lo, f)
		hi = max(hi, f)
	}
	if finite > 0 {
		s.Min, s.Max, s.Mean = lo, hi, sum/float64(finite)
	}
	return s
}

// Finite reports whether no value was NaN or infinite.
func (s Stats) Finite() bool { return s.NaN == 0 && s.Inf == 0 }
