package sample

import (
	"math"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// TestLogprobsOnReferenceLogits takes transformers' full logits of prompt 0:
// the top tokens are the reference's 20 best in order, the probabilities
// sum to 1, and the gaps between log-probabilities are the logit gaps.
func TestLogprobsOnReferenceLogits(t *testing.T) {
	logits := testref.HFLogitsPrompt0(t)
	top20 := testref.HFOutputs(t)[0].LastTop20
	best := Argmax(logits)
	chosen, top := Logprobs(logits, best, 20)
	if len(top) != 20 {
		t.Fatalf("%d top entries, want 20", len(top))
	}
	for i, want := range top20 {
		if top[i].ID != int(want[0]) {
			t.Fatalf("top %d: id %d, reference %d", i, top[i].ID, int(want[0]))
		}
		if gap, ref := top[0].Logprob-top[i].Logprob, top20[0][1]-want[1]; math.Abs(gap-ref) > 1e-4 {
			t.Fatalf("top %d: logprob gap %g, logit gap %g", i, gap, ref)
		}
	}
	if chosen != top[0].Logprob {
		t.Fatalf("chosen %g, best %g", chosen, top[0].Logprob)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - float64(logits[best]))
	}
	if got := math.Exp(chosen) * sum; math.Abs(got-1) > 1e-9 {
		t.Fatalf("p(best) x sum(exp(l - l_best)) = %g, want 1", got)
	}
}

func TestLogprobsEdgeCases(t *testing.T) {
	cases := []struct {
		name   string
		logits []float32
		id, k  int
		want   float64
		topLen int
	}{
		{"empty", nil, 0, 3, math.Inf(-1), 0},
		{"id out of range", []float32{1, 2}, 5, 1, math.Inf(-1), 1},
		{"uniform", []float32{0, 0, 0, 0}, 2, 10, math.Log(0.25), 4},
		{"no top", []float32{0, 0}, 0, 0, math.Log(0.5), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, top := Logprobs(c.logits, c.id, c.k)
			if math.Abs(got-c.want) > 1e-12 && !(math.IsInf(got, -1) && math.IsInf(c.want, -1)) {
				t.Fatalf("logprob %g, want %g", got, c.want)
			}
			if len(top) != c.topLen {
				t.Fatalf("%d top entries, want %d", len(top), c.topLen)
			}
		})
	}
}

func TestApplyPresenceFrequency(t *testing.T) {
	cases := []struct {
		name                string
		generated           []int
		presence, frequency float64
		want                []float32
	}{
		{"off", []int{0, 0}, 0, 0, []float32{1, 1, 1}},
		{"presence once per token", []int{0, 0, 2}, 0.5, 0, []float32{0.5, 1, 0.5}},
		{"frequency per occurrence", []int{0, 0, 2}, 0, 0.25, []float32{0.5, 1, 0.75}},
		{"both, negative", []int{1}, -1, -1, []float32{1, 3, 1}},
		{"ids outside ignored", []int{-1, 7}, 1, 1, []float32{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := []float32{1, 1, 1}
			ApplyPresenceFrequency(l, c.generated, c.presence, c.frequency)
			for i := range l {
				if l[i] != c.want[i] {
					t.Fatalf("logits %v, want %v", l, c.want)
				}
			}
		})
	}
}
