package sample

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"sort"
)

// refSampler is the sampler as it was before it was made fast: it builds
// every candidate, sorts them all and takes the exponential of each. It is
// kept, unchanged but for its names, as the reference the fast one must
// draw the same tokens as.
type refSampler struct {
	p   Params
	rng *rand.Rand
}

func newRef(p Params) *refSampler {
	return &refSampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
}

type refCandidate struct {
	id    int
	logit float32
	p     float64
}

func refArgmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// Sample is prepare, then draw.
func (s *refSampler) Sample(logits []float32, history []int) int {
	c, id := s.prepare(logits, history)
	if c == nil {
		return id
	}
	return s.draw(c)
}

// prepare is Sample up to the draw: it returns the filtered candidates with
// their normalised probabilities, or nil and the token when no draw is made.
func (s *refSampler) prepare(logits []float32, history []int) ([]refCandidate, int) {
	s.penalize(logits, history)
	if s.p.Temperature <= 0 {
		return nil, refArgmax(logits)
	}
	temp := float32(s.p.Temperature)
	var c []refCandidate
	for i, l := range logits {
		if math.IsInf(float64(l), -1) || math.IsNaN(float64(l)) {
			continue
		}
		c = append(c, refCandidate{id: i, logit: l / temp})
	}
	if len(c) == 0 {
		return nil, refArgmax(logits)
	}
	k := s.p.TopK
	if k <= 0 || k > len(c) {
		k = len(c)
	}
	c = refTopK(c, k)
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
	return c, 0
}

// draw is Sample's draw from prepare's candidates.
func (s *refSampler) draw(c []refCandidate) int {
	sum := 0.0
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

func refBetter(a, b refCandidate) bool {
	if a.logit != b.logit {
		return a.logit > b.logit
	}
	return a.id < b.id
}

func refTopK(c []refCandidate, k int) []refCandidate {
	if k < len(c)/8 {
		h := refHeap(c[:0:0])
		for _, x := range c {
			if len(h) < k {
				heap.Push(&h, x)
			} else if refBetter(x, h[0]) {
				h[0] = x
				heap.Fix(&h, 0)
			}
		}
		c = append(c[:0], h...)
	}
	sort.Slice(c, func(i, j int) bool { return refBetter(c[i], c[j]) })
	return c[:k]
}

type refHeap []refCandidate

func (h refHeap) Len() int           { return len(h) }
func (h refHeap) Less(i, j int) bool { return refBetter(h[j], h[i]) }
func (h refHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *refHeap) Push(x any)        { *h = append(*h, x.(refCandidate)) }
func (h *refHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (s *refSampler) penalize(logits []float32, history []int) {
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
