package sample

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// logitShapes returns full-vocabulary logit rows shaped like a real
// model's: transformers' logits of prompt 0 (peaked: p(best) = 0.999),
// the same flattened (scaled by 0.3, so that thousands of tokens share the
// mass), rounded to 1/4 (many exact ties, ordered by id), and with a
// grammar-style mask (-Inf) and a few NaNs.
func logitShapes(t testing.TB) map[string][]float32 {
	ref := testref.HFLogitsPrompt0(t)
	shapes := map[string][]float32{"prompt0": ref}
	flat := make([]float32, len(ref))
	ties := make([]float32, len(ref))
	masked := make([]float32, len(ref))
	for i, l := range ref {
		flat[i] = 0.3 * l
		ties[i] = float32(math.Round(float64(l)*4) / 4)
		masked[i] = flat[i]
		switch {
		case i%3 == 0:
			masked[i] = float32(math.Inf(-1))
		case i%1001 == 0:
			masked[i] = float32(math.NaN())
		}
	}
	shapes["flat"], shapes["ties"], shapes["masked"] = flat, ties, masked
	return shapes
}

// TestSampleMatchesReference draws 100 tokens in a row, per logit shape
// and parameter set, with the sampler and with the reference (the sampler
// as it was: every candidate sorted, every exp taken, sums in sorted
// order), both seeded alike, and requires the same tokens. The reference
// prepares its sorted candidates once per row (history fixed) and then only
// draws: the same arithmetic as its Sample, affordable 100 times.
// Candidate sets of at most exactMax run the reference arithmetic bit for
// bit; larger ones sum in another order and could differ only where U falls
// within about n * 2^-53 (plus the left-out mass, below n * e^-38.5) of a
// boundary, a rate below 1e-10 a draw: none is expected among these
// 11,200 draws, and with fixed seeds none can appear later.
func TestSampleMatchesReference(t *testing.T) {
	params := []Params{
		{Temperature: 1},
		{Temperature: 0.7},
		{Temperature: 1.5},
		{Temperature: 1, TopK: 40},
		{Temperature: 1, TopK: 5000},
		{Temperature: 1, TopP: 0.9},
		{Temperature: 1, TopP: 0.999},
		{Temperature: 1, MinP: 0.05},
		{Temperature: 1, MinP: 1e-6},
		{Temperature: 2, TopP: 0.95, MinP: 0.01},
		{Temperature: 2, TopP: 0.5, MinP: 1e-4},
		{Temperature: 0.7, TopK: 20, TopP: 0.8, RepeatPenalty: 1.1, RepeatLastN: -1},
		{Temperature: 1, RepeatPenalty: 1.3, RepeatLastN: 8},
		{Temperature: 0},
	}
	const draws = 100
	history := []int{11, 12, 13, 198, 271, 13}
	for name, logits := range logitShapes(t) {
		if testing.Short() && name != "prompt0" {
			continue
		}
		for i, p := range params {
			p.Seed = uint64(i)
			t.Run(fmt.Sprintf("%s/%+v", name, p), func(t *testing.T) {
				ref := newRef(p)
				row := append([]float32(nil), logits...)
				c, id := ref.prepare(row, history)
				s := New(p)
				for n := range draws {
					copy(row, logits)
					got, want := s.Sample(row, history), id
					if c != nil {
						want = ref.draw(c)
					}
					if got != want {
						t.Fatalf("draw %d: %d, reference %d", n, got, want)
					}
				}
			})
		}
	}
}

// TestSampleSequenceMatchesReference feeds each draw back into the history
// (so the penalty changes from step to step) for a few seeds, against the
// reference's own Sample.
func TestSampleSequenceMatchesReference(t *testing.T) {
	logits := testref.HFLogitsPrompt0(t)
	p := Params{Temperature: 1.5, TopP: 0.95, RepeatPenalty: 1.5, RepeatLastN: 4}
	got, want := make([]float32, len(logits)), make([]float32, len(logits))
	for seed := range uint64(3) {
		p.Seed = seed
		s, ref := New(p), newRef(p)
		history := []int{11, 12}
		for step := range 6 {
			copy(got, logits)
			copy(want, logits)
			g, w := s.Sample(got, history), ref.Sample(want, history)
			if g != w {
				t.Fatalf("seed %d step %d: drew %d, reference %d", seed, step, g, w)
			}
			history = append(history, g)
		}
	}
}

// TestSampleEdgeCases covers rows the reference treats specially: no
// drawable logit falls back to Argmax, a single finite logit is drawn, +Inf
// logits share the draw, and a MinP above 1 keeps only the best.
func TestSampleEdgeCases(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	cases := []struct {
		name    string
		p       Params
		logits  []float32
		allowed map[int]bool
	}{
		{"all -Inf", Params{Temperature: 1}, []float32{-inf, -inf}, map[int]bool{0: true}},
		{"all NaN", Params{Temperature: 1}, []float32{nan, nan}, map[int]bool{0: true}},
		{"one finite", Params{Temperature: 1, TopP: 0.5}, []float32{nan, -inf, 3}, map[int]bool{2: true}},
		{"+Inf shares", Params{Temperature: 1}, []float32{1, inf, 2, inf}, map[int]bool{1: true, 3: true}},
		{"+Inf top-k 1", Params{Temperature: 1, TopK: 1}, []float32{1, inf, 2, inf}, map[int]bool{1: true}},
		{"tiny temperature", Params{Temperature: 1e-38}, []float32{1, 3, 2, 3}, map[int]bool{1: true, 3: true}},
		{"min-p above 1", Params{Temperature: 1, MinP: 2}, bigRow(2000, 7), map[int]bool{7: true}},
		{"min-p above 1, small", Params{Temperature: 1, MinP: 2}, []float32{0, 1}, map[int]bool{1: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for seed := range uint64(50) {
				c.p.Seed = seed
				l := append([]float32(nil), c.logits...)
				if id := New(c.p).Sample(l, nil); !c.allowed[id] {
					t.Fatalf("seed %d: drew %d, allowed %v", seed, id, c.allowed)
				}
			}
		})
	}
}

// bigRow is a flat row of n logits (more than exactMax candidates) whose
// best is at id.
func bigRow(n, id int) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(i%17) / 100
	}
	l[id] = 1
	return l
}

// TestSampleDistribution checks the large-set path against the exact
// softmax with a chi-square test on 2,000 normal(0,1) logits at
// temperature 1 and with top-p 0.5: 10,000 draws each, in 40 bins of
// equal probability mass by id order. The threshold 73.4 is the 0.999
// quantile of chi-square with 39 degrees of freedom.
func TestSampleDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 2000)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64())
	}
	for _, p := range []Params{{Temperature: 1, Seed: 3}, {Temperature: 1, TopP: 0.5, Seed: 4}} {
		t.Run(fmt.Sprintf("%+v", p), func(t *testing.T) {
			want := softmaxWithTopP(logits, p.TopP)
			const bins, n = 40, 10000
			// Bin edges by cumulative probability in id order.
			bin := make([]int, len(logits))
			acc, b := 0.0, 0
			for i, q := range want {
				bin[i] = b
				if acc += q; acc > float64(b+1)/bins && b < bins-1 {
					b++
				}
			}
			expect := make([]float64, bins)
			for i, q := range want {
				expect[bin[i]] += q * n
			}
			counts := make([]float64, bins)
			s := New(p)
			for range n {
				id := s.Sample(append([]float32(nil), logits...), nil)
				if want[id] == 0 {
					t.Fatalf("drew %d, outside top-p", id)
				}
				counts[bin[id]]++
			}
			chi, dof := 0.0, -1
			for i := range counts {
				if expect[i] > 0 {
					chi += (counts[i] - expect[i]) * (counts[i] - expect[i]) / expect[i]
					dof++
				}
			}
			if chi > 73.4 || dof > 39 {
				t.Fatalf("chi-square %.1f with %d degrees of freedom, threshold 73.4 (39)", chi, dof)
			}
		})
	}
}

// softmaxWithTopP is the textbook distribution: softmax, then the smallest
// set of most likely tokens whose probability reaches topP, renormalised.
func softmaxWithTopP(logits []float32, topP float64) []float64 {
	p := make([]float64, len(logits))
	var sum float64
	for i, l := range logits {
		p[i] = math.Exp(float64(l))
		sum += p[i]
	}
	order := make([]int, len(p))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(p[b], p[a]) })
	cum, kept := 0.0, 0.0
	for _, i := range order {
		p[i] /= sum
		if topP > 0 && topP < 1 && cum >= topP {
			p[i] = 0
			continue
		}
		cum += p[i]
		kept += p[i]
	}
	for i := range p {
		p[i] /= kept
	}
	return p
}
