package sample

import (
	"math"
	"testing"
)

func TestArgmaxFirstOnTies(t *testing.T) {
	if got := Argmax([]float32{1, 3, 3, 2}); got != 1 {
		t.Fatalf("Argmax = %d, want 1", got)
	}
}

func TestGreedyAndFilters(t *testing.T) {
	logits := []float32{0, 5, 4.9, -1, 2}
	cases := []struct {
		name    string
		p       Params
		allowed map[int]bool
	}{
		{"greedy", Params{Temperature: 0}, map[int]bool{1: true}},
		{"top-k 2", Params{Temperature: 1, TopK: 2}, map[int]bool{1: true, 2: true}},
		{"top-k 1", Params{Temperature: 5, TopK: 1}, map[int]bool{1: true}},
		{"top-p small", Params{Temperature: 1, TopP: 0.1}, map[int]bool{1: true}},
		{"min-p", Params{Temperature: 1, MinP: 0.5}, map[int]bool{1: true, 2: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen := map[int]bool{}
			for seed := uint64(0); seed < 200; seed++ {
				c.p.Seed = seed
				l := append([]float32(nil), logits...)
				id := New(c.p).Sample(l, nil)
				if !c.allowed[id] {
					t.Fatalf("seed %d: sampled %d, allowed %v", seed, id, c.allowed)
				}
				seen[id] = true
			}
			if len(seen) != len(c.allowed) {
				t.Fatalf("sampled %v over 200 seeds, want every one of %v", seen, c.allowed)
			}
		})
	}
}

func TestSeedReproducible(t *testing.T) {
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i)))
	}
	draw := func(seed uint64) []int {
		s := New(Params{Temperature: 1, Seed: seed})
		var out []int
		for i := 0; i < 20; i++ {
			out = append(out, s.Sample(append([]float32(nil), logits...), nil))
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed differs at %d: %v vs %v", i, a, b)
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatalf("seeds 7 and 8 drew the same 20 tokens")
	}
}

func TestTemperatureDistribution(t *testing.T) {
	// Two tokens with logits ln 3 and 0 at T=1: p = 0.75 / 0.25.
	s := New(Params{Temperature: 1, Seed: 1})
	count := 0
	const n = 20000
	for i := 0; i < n; i++ {
		if s.Sample([]float32{float32(math.Log(3)), 0}, nil) == 0 {
			count++
		}
	}
	if got := float64(count) / n; math.Abs(got-0.75) > 0.02 {
		t.Fatalf("P(token 0) = %.3f, want 0.75", got)
	}
}

func TestRepeatPenalty(t *testing.T) {
	cases := []struct {
		name    string
		lastN   int
		history []int
		want    []float32
	}{
		{"all history", -1, []int{0, 1, 1}, []float32{1, -4, 3}},
		{"last 1", 1, []int{0, 1}, []float32{2, -4, 3}},
		{"none", 0, []int{0, 1}, []float32{2, -2, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := []float32{2, -2, 3}
			s := New(Params{RepeatPenalty: 2, RepeatLastN: c.lastN})
			s.penalize(l, c.history)
			for i := range l {
				if l[i] != c.want[i] {
					t.Fatalf("got %v, want %v", l, c.want)
				}
			}
		})
	}
	// Greedy with a penalty: token 0 (2 -> 1) loses to token 2 only if seen.
	s := New(Params{RepeatPenalty: 10, RepeatLastN: -1})
	if got := s.Sample([]float32{3, 0, 2}, []int{0}); got != 2 {
		t.Fatalf("penalised greedy = %d, want 2", got)
	}
}
