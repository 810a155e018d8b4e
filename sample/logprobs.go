package sample

import (
	"container/heap"
	"math"
	"slices"
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
	maxL := float64(maxValue(logits))
	lse := maxL + math.Log(expSum(logits, maxL))
	chosen := math.Inf(-1)
	if id >= 0 && id < len(logits) {
		chosen = float64(logits[id]) - lse
	}
	if k <= 0 {
		return chosen, nil
	}
	k = min(k, len(logits))
	h := topKeys(logits, k)
	top := make([]TokenLogprob, len(h))
	for i, key := range h {
		c := candidate{key: key}
		top[i] = TokenLogprob{ID: c.id(), Logprob: float64(c.logit()) - lse}
	}
	return chosen, top
}

// topKeys returns the keys (see makeKey) of the k largest logits, best
// first, keeping a min-heap of k keys. NaN logits are skipped.
func topKeys(logits []float32, k int) []uint64 {
	h := make(keyHeap, 0, k)
	for i, l := range logits {
		if l != l {
			continue
		}
		key := makeKey(l, i)
		switch {
		case len(h) < k:
			heap.Push(&h, key)
		case key > h[0]:
			h[0] = key
			heap.Fix(&h, 0)
		}
	}
	slices.Sort(h)
	slices.Reverse(h)
	return h
}

// keyHeap is a min-heap of candidate keys: the worst kept one on top.
type keyHeap []uint64

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// expSum is the sum of exp(l - maxL) over logits, maxL their largest. Terms
// more than negligible below maxL (each below 2^-55 against the largest
// one's 1) are left out: together at most len(logits) * 2^-55 of the sum.
func expSum(logits []float32, maxL float64) float64 {
	floor := maxL - negligible
	var d [fillChunk]float64
	n, sum := 0, 0.0
	flush := func() {
		expInto(d[:n])
		for _, t := range d[:n] {
			sum += t
		}
		n = 0
	}
	for _, l := range logits {
		if float64(l) >= floor {
			d[n] = float64(l) - maxL
			if n++; n == fillChunk {
				flush()
			}
		}
	}
	flush()
	return sum
}
