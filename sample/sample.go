// Package sample turns logits into the next token: greedy, or temperature
// with top-k, top-p and min-p filtering, a repetition penalty and a seed.
package sample

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"sort"
)

// Params are the sampling settings. The filters run in transformers' order:
// repetition penalty, temperature, top-k, top-p, min-p.
type Params struct {
	Temperature   float64 // <= 0: greedy
	TopK          int     // <= 0: off
	TopP          float64 // >= 1 or <= 0: off
	MinP          float64 // <= 0: off
	RepeatPenalty float64 // 1 or <= 0: off
	RepeatLastN   int     // how many recent tokens the penalty sees; < 0: all
	Seed          uint64
}

// Sampler draws tokens with fixed parameters and its own random stream.
type Sampler struct {
	p    Params
	rng  *rand.Rand
	cand []candidate
}

type candidate struct {
	id    int
	logit float32
	p     float64
}

// New returns a sampler; the same seed gives the same draws.
func New(p Params) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
}

// Greedy reports whether the sampler always takes the argmax.
func (s *Sampler) Greedy() bool { return s.p.Temperature <= 0 }

// Argmax returns the index of the largest logit (the first one on ties, as
// torch.argmax does).
func Argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// Sample picks the next token. logits may be modified (the penalty is
// applied in place). history holds the tokens so far (prompt and output).
func (s *Sampler) Sample(logits []float32, history []int) int {
	s.penalize(logits, history)
	if s.Greedy() {
		return Argmax(logits)
	}
	temp := float32(s.p.Temperature)
	c := s.cand[:0]
	for i, l := range logits {
		if math.IsInf(float64(l), -1) || math.IsNaN(float64(l)) {
			continue
		}
		c = append(c, candidate{id: i, logit: l / temp})
	}
	s.cand = c
	if len(c) == 0 {
		return Argmax(logits)
	}
	k := s.p.TopK
	if k <= 0 || k > len(c) {
		k = len(c)
	}
	c = topK(c, k)
	// Softmax over the kept candidates.
	maxL := float64(c[0].logit)
	var sum float64
	for i := range c {
		c[i].p = math.Exp(float64(c[i].logit) - maxL)
		sum += c[i].p
	}
	for i := range c {
		c[i].p /= sum
	}
	if tp := s.p.TopP; tp > 0 && tp < 1 {
		cum := 0.0
		for i := range c {
			cum += c[i].p
			if cum >= tp {
				c = c[:i+1]
				break
			}
		}
	}
	if mp := s.p.MinP; mp > 0 {
		limit := c[0].p * mp
		keep := 1
		for keep < len(c) && c[keep].p >= limit {
			keep++
		}
		c = c[:keep]
	}
	sum = 0
	for _, x := range c {
		sum += x.p
	}
	r := s.rng.Float64() * sum
	for _, x := range c {
		r -= x.p
		if r < 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}

// better orders candidates by logit, then by id.
func better(a, b candidate) bool {
	if a.logit != b.logit {
		return a.logit > b.logit
	}
	return a.id < b.id
}

// topK returns the k best candidates, sorted best first. With k much smaller
// than len(c) it keeps a min-heap of k instead of sorting everything.
func topK(c []candidate, k int) []candidate {
	if k < len(c)/8 {
		h := candHeap(c[:0:0])
		for _, x := range c {
			if len(h) < k {
				heap.Push(&h, x)
			} else if better(x, h[0]) {
				h[0] = x
				heap.Fix(&h, 0)
			}
		}
		c = append(c[:0], h...)
	}
	sort.Slice(c, func(i, j int) bool { return better(c[i], c[j]) })
	return c[:k]
}

// candHeap is a min-heap: the worst kept candidate on top.
type candHeap []candidate

func (h candHeap) Len() int           { return len(h) }
func (h candHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h candHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)        { *h = append(*h, x.(candidate)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// penalize applies the repetition penalty of transformers and llama.cpp:
// a seen token's positive logit is divided by the penalty, a negative one
// multiplied, once per distinct token.
func (s *Sampler) penalize(logits []float32, history []int) {
	pen := float32(s.p.RepeatPenalty)
	if pen <= 0 || pen == 1 || len(history) == 0 {
		return
	}
	if n := s.p.RepeatLastN; n >= 0 && n < len(history) {
		history = history[len(history)-n:]
	}
	seen := make(map[int]struct{}, len(history))
	for _, t := range history {
		if t < 0 || t >= len(logits) {
			continue
		}
		if _, ok := seen[t]; ok {
			continue
		}
		seen[t] = struct{}{}
		if logits[t] > 0 {
			logits[t] /= pen
		} else {
			logits[t] *= pen
		}
	}
}
