package sample

import (
	"math"
	"sort"
)

// TokenLogprob is one token's log-probability.
type TokenLogprob struct {
	ID      int
	Logprob float64
}

// Logprobs returns the log-softmax of logits at id and the k most likely
// tokens (best first, ties by lower id), as the OpenAI API's logprobs and
// top_logprobs report them. It reads logits without changing them; call it
// before a sampler applies its penalties.
func Logprobs(logits []float32, id, k int) (float64, []TokenLogprob) {
	if len(logits) == 0 {
		return math.Inf(-1), nil
	}
	maxL := float64(logits[Argmax(logits)])
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - maxL)
	}
	lse := maxL + math.Log(sum)
	chosen := math.Inf(-1)
	if id >= 0 && id < len(logits) {
		chosen = float64(logits[id]) - lse
	}
	if k <= 0 {
		return chosen, nil
	}
	k = min(k, len(logits))
	c := make([]candidate, 0, len(logits))
	for i, l := range logits {
		c = append(c, candidate{id: i, logit: l})
	}
	c = topK(c, k)
	top := make([]TokenLogprob, len(c))
	for i, x := range c {
		top[i] = TokenLogprob{ID: x.id, Logprob: float64(x.logit) - lse}
	}
	sort.SliceStable(top, func(i, j int) bool { return top[i].Logprob > top[j].Logprob })
	return chosen, top
}
