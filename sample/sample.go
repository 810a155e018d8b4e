// Package sample turns logits into the next token: greedy, or temperature
// with top-k, top-p and min-p filtering, a repetition penalty and a seed.
package sample

import (
	"math"
	"math/rand/v2"
	"slices"
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
// Its buffers are reused from token to token: one Sampler serves one
// sequence at a time.
type Sampler struct {
	p    Params
	rng  *rand.Rand
	cand []candidate
	seen []uint64    // bitset of the tokens the penalty has seen, cleared after use
	at   map[int]int // Penalties' tokens
}

// candidate is a token that can be drawn: key orders candidates (see
// makeKey), t is exp(logit/T - max logit/T), its unnormalised probability.
type candidate struct {
	key uint64
	t   float64
}

// New returns a sampler; the same seed gives the same draws.
func New(p Params) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
}

// Greedy reports whether the sampler always takes the argmax.
func (s *Sampler) Greedy() bool { return s.p.Temperature <= 0 }

// negligible is the cut-off below which a candidate is left out: a token
// whose scaled logit lies more than 38.5 below the best one has
// t = exp(-38.5) < 2^-55. The reference arithmetic (sampleSorted) sums in
// sorted order from the best token's exp(0) = 1, so its sum is >= 1, and
// adding a term below half a unit in the last place (2^-53) leaves a
// float64 unchanged: its sums, and so its draws, are exactly those with
// every token included. Normalised, such a token's probability is below
// 2^-55, under half an ulp of any cumulative sum >= 0.5, so top-p cannot
// see it either, nor min-p unless MinP < 2^-55.
const negligible = 38.5

// nBands is the number of one-nat bands of scaled logits below the best
// that a sample's histogram keeps: band b holds the candidates whose logit
// is between b and b+1 below the best.
const nBands = 39

// exactMax is the largest candidate set that is sorted and sampled with the
// reference arithmetic (sums in sorted order), bit for bit.
const exactMax = 1024

// margin is the relative slack with which a band is taken to hold a mass
// target: sums in different orders differ by far less (n * 2^-53).
const margin = 1e-9

var negInf = math.Inf(-1)

// Sample picks the next token. logits may be modified (the penalty is
// applied in place). history holds the tokens so far (prompt and output).
//
// Candidates are ordered by scaled logit, then id; -Inf and NaN logits are
// never drawn, nor those more than negligible below the best. Top-k takes
// one streaming pass (topStream) and needs no exp but those of the k kept.
// Otherwise one pass takes every candidate's exp into a histogram of mass
// by band (none for min-p alone), and only the bands that top-p, min-p or
// the draw reach are then built as candidates. Sets of at most exactMax
// are sorted and drawn from with the reference arithmetic, bit for bit;
// larger ones are cut and drawn from by selecting on probability mass
// (quickselect), without a sort.
func (s *Sampler) Sample(logits []float32, history []int) int {
	s.penalize(logits, history)
	return s.sample(logits)
}

// sample is Sample after the penalty.
func (s *Sampler) sample(logits []float32) int {
	if s.Greedy() {
		return Argmax(logits)
	}
	temp := float32(s.p.Temperature)
	if k := s.p.TopK; k > 0 {
		if c := s.topStream(logits, temp, k); len(c) == k {
			bestX := best(c).logit()
			switch {
			case math.IsInf(float64(bestX), 1):
				return s.sampleInf(logits, temp)
			case k <= exactMax:
				return s.sampleSorted(c)
			}
			for i := range c {
				c[i].t = fastExp(float64(c[i].logit()) - float64(bestX))
			}
			return s.sampleMass(c, sumT(c))
		}
		// Fewer than k candidates: top-k keeps them all.
	}
	maxL := maxValue(logits)
	if math.IsInf(float64(maxL), -1) {
		return Argmax(logits)
	}
	// Division rounds monotonically: the largest scaled logit is maxL/temp.
	maxX := maxL / temp
	switch {
	case math.IsInf(float64(maxX), 1):
		return s.sampleInf(logits, temp)
	case math.IsInf(float64(maxX), -1):
		// Every scaled logit overflowed to -Inf: no softmax is defined;
		// the best raw logit is the limit.
		return firstIndex(logits, maxL)
	}
	tp, mp := s.p.TopP, s.p.MinP
	topP, minP := tp > 0 && tp < 1, mp > 0
	// Only the total mass needs every candidate's exp: min-p keeps
	// t >= MinP whatever the total.
	needMass := topP || !minP
	var h histogram
	h.fill(logits, temp, float64(maxX), needMass)
	if h.n <= exactMax {
		return s.sampleSorted(s.build(logits, temp, float64(maxX), nBands-1))
	}
	total := -1.0 // unknown: min-p alone
	if needMass {
		total = h.mass()
	}
	if !topP && !minP {
		// The draw's target is known now: build only the bands it reaches.
		r := s.rng.Float64() * total
		edge := h.massBand(r * (1 + margin))
		c := s.build(logits, temp, float64(maxX), edge)
		n := selectMass(c, r, true)
		if n == 0 && edge < nBands-1 {
			c = s.build(logits, temp, float64(maxX), nBands-1)
			n = selectMass(c, r, true)
		}
		if n == 0 {
			return worst(c).id()
		}
		return c[n-1].id()
	}
	edge, minPEdge := nBands-1, false
	if topP {
		edge = h.massBand(tp * total * (1 + margin))
	}
	if minP {
		// t >= MinP needs a logit at most -ln(MinP) below the best.
		if e := int(min(nBands-1, max(0, -math.Log(mp))+margin)); e <= edge {
			edge, minPEdge = e, true
		}
	}
	c := s.build(logits, temp, float64(maxX), edge)
	if id, ok := s.filterDraw(c, total, edge == nBands-1, minPEdge); ok {
		return id
	}
	return s.sampleMass(s.build(logits, temp, float64(maxX), nBands-1), total)
}

// histogram counts the candidates and, if asked, sums their t by band.
type histogram struct {
	n int // candidates
	t [nBands]float64
}

// fillChunk is how many candidates fill takes the exp of at once.
const fillChunk = 256

// fill takes every candidate of logits into the histogram; their t only
// withMass.
func (h *histogram) fill(logits []float32, temp float32, maxX float64, withMass bool) {
	lfloor := logitFloor(temp, maxX, nBands-1)
	var d [fillChunk]float64
	var band [fillChunk]uint8
	n := 0
	for _, l := range logits {
		if !(float64(l) >= lfloor) { // also drops NaN and -Inf
			continue
		}
		x := l
		if temp != 1 {
			x = l / temp
		}
		dx := float64(x) - maxX
		if dx < -negligible {
			continue
		}
		d[n], band[n] = dx, uint8(-dx)
		if n++; n == fillChunk {
			h.add(d[:], band[:], withMass)
			n = 0
		}
	}
	h.add(d[:n], band[:n], withMass)
}

// add takes a chunk of candidates, their logits' distance below the best
// and their bands, into the histogram. Two interleaved sets of sums keep
// consecutive candidates of one band from waiting on each other.
func (h *histogram) add(d []float64, band []uint8, withMass bool) {
	h.n += len(d)
	if !withMass {
		return
	}
	expInto(d)
	var t [2][nBands]float64
	for i, b := range band[:len(d)] {
		t[i&1][b%nBands] += d[i]
	}
	for b := range h.t {
		h.t[b] += t[0][b] + t[1][b]
	}
}

// mass is the sum of every candidate's t.
func (h *histogram) mass() float64 {
	m := 0.0
	for _, t := range h.t {
		m += t
	}
	return m
}

// massBand is the first band by which the mass exceeds target.
func (h *histogram) massBand(target float64) int {
	m := 0.0
	for b, t := range h.t {
		if m += t; m > target {
			return b
		}
	}
	return nBands - 1
}

// logitFloor is an unscaled logit below every one whose scaled logit falls
// in the bands up to edge: a cheap first test before the exact one on the
// scaled logit. The division rounds by at most 2^-24 of the value, so the
// floor keeps one unit and 2^-20 of its size in hand.
func logitFloor(temp float32, maxX float64, edge int) float64 {
	f := (maxX - min(negligible, float64(edge+1))) * float64(temp)
	return f - 1 - math.Abs(f)*0x1p-20
}

// build returns the candidates of the bands up to edge, with their t.
func (s *Sampler) build(logits []float32, temp float32, maxX float64, edge int) []candidate {
	lfloor := logitFloor(temp, maxX, edge)
	c := s.cand[:0]
	for i, l := range logits {
		if !(float64(l) >= lfloor) {
			continue
		}
		x := l
		if temp != 1 {
			x = l / temp
		}
		d := float64(x) - maxX
		if d < -negligible || int(-d) > edge {
			continue
		}
		c = append(c, candidate{key: makeKey(x, i), t: fastExp(d)})
	}
	s.cand = c
	return c
}

// topStream returns the k best candidates of logits (without their t), or
// all of them when there are fewer: one pass that keeps candidates at or
// above the k-th best scaled logit seen so far, cut back to k (quickselect)
// whenever the buffer fills. Tokens whose scaled logit is -Inf are left
// out (their probability is 0).
func (s *Sampler) topStream(logits []float32, temp float32, k int) []candidate {
	limit := max(2*k, 1024)
	thr := float32(-math.MaxFloat32)
	c := s.cand[:0]
	for i, l := range logits {
		x := l
		if temp != 1 {
			x = l / temp
		}
		if !(x >= thr) { // also drops NaN
			continue
		}
		c = append(c, candidate{key: makeKey(x, i)})
		if len(c) == limit {
			selectTop(c, k)
			c = c[:k]
			thr = worst(c).logit()
		}
	}
	if len(c) > k {
		selectTop(c, k)
		c = c[:k]
	}
	s.cand = c
	return c
}

// sampleInf draws evenly among the tokens whose scaled logit is +Inf (top-k
// still applies; every one has t = 1).
func (s *Sampler) sampleInf(logits []float32, temp float32) int {
	c := s.cand[:0]
	for i, l := range logits {
		if x := l / temp; math.IsInf(float64(x), 1) {
			c = append(c, candidate{key: makeKey(x, i), t: 1})
		}
	}
	s.cand = c
	if k := s.p.TopK; k > 0 && k < len(c) {
		selectTop(c, k)
		c = c[:k]
	}
	return s.sampleMass(c, float64(len(c)))
}

// sumT is the mass of c.
func sumT(c []candidate) float64 {
	m := 0.0
	for _, x := range c {
		m += x.t
	}
	return m
}

// worst is c's last candidate in order.
func worst(c []candidate) candidate {
	w := c[0]
	for _, x := range c {
		if x.key < w.key {
			w = x
		}
	}
	return w
}

// best is c's first candidate in order.
func best(c []candidate) candidate {
	b := c[0]
	for _, x := range c {
		if x.key > b.key {
			b = x
		}
	}
	return b
}

// makeKey packs a scaled logit and its token id into a key that is larger
// for the better candidate: by logit, then by lower id.
func makeKey(x float32, id int) uint64 {
	if x == 0 {
		x = 0 // -0 ties with +0, as the comparison of logits has it
	}
	b := math.Float32bits(x)
	if b&0x80000000 != 0 {
		b = ^b
	} else {
		b |= 0x80000000
	}
	return uint64(b)<<32 | uint64(^uint32(id))
}

// id is the token of a key.
func (c candidate) id() int { return int(^uint32(c.key)) }

// logit is the scaled logit of a key.
func (c candidate) logit() float32 {
	b := uint32(c.key >> 32)
	if b&0x80000000 != 0 {
		b &^= 0x80000000
	} else {
		b = ^b
	}
	return math.Float32frombits(b)
}

// sampleSorted sorts c and draws with the reference arithmetic: softmax
// over c, top-p and min-p on the normalised probabilities, sums in order.
func (s *Sampler) sampleSorted(c []candidate) int {
	slices.SortFunc(c, func(a, b candidate) int {
		switch {
		case a.key > b.key:
			return -1
		case a.key < b.key:
			return 1
		}
		return 0
	})
	maxL := float64(c[0].logit())
	var sum float64
	for i := range c {
		c[i].t = math.Exp(float64(c[i].logit()) - maxL)
		sum += c[i].t
	}
	for i := range c {
		c[i].t /= sum
	}
	if tp := s.p.TopP; tp > 0 && tp < 1 {
		cum := 0.0
		for i := range c {
			cum += c[i].t
			if cum >= tp {
				c = c[:i+1]
				break
			}
		}
	}
	if mp := s.p.MinP; mp > 0 {
		limit := c[0].t * mp
		keep := 1
		for keep < len(c) && c[keep].t >= limit {
			keep++
		}
		c = c[:keep]
	}
	sum = 0
	for _, x := range c {
		sum += x.t
	}
	r := s.rng.Float64() * sum
	for _, x := range c {
		r -= x.t
		if r < 0 {
			return x.id()
		}
	}
	return c[len(c)-1].id()
}

// sampleMass draws from c, every candidate there is (top-k applied) with
// its t, total their mass.
func (s *Sampler) sampleMass(c []candidate, total float64) int {
	id, _ := s.filterDraw(c, total, true, false)
	return id
}

// filterDraw applies top-p and min-p to c and draws. The probabilities are
// never normalised: top-p keeps the shortest head whose mass reaches TopP
// times total, min-p the candidates with t >= MinP (the best has t = 1),
// and the draw takes the first candidate, in order, whose cumulative mass
// exceeds U times the kept mass. Sums run in another order than the sorted
// one, so a draw can differ from sampleSorted's only where U falls within a
// few float64 roundings of a boundary. c, the best candidates, need not be
// complete: it must hold top-p's head, or (minPEdge) every candidate min-p
// keeps; ok is false when top-p's head turns out longer than c.
func (s *Sampler) filterDraw(c []candidate, total float64, complete, minPEdge bool) (id int, ok bool) {
	sum := total
	if tp := s.p.TopP; tp > 0 && tp < 1 {
		n := selectMass(c, tp*total, false)
		switch {
		case n > 0:
			c = c[:n]
			sum = -1
		case !complete && !minPEdge:
			return 0, false
		case !complete:
			sum = -1
		}
	}
	if mp := s.p.MinP; mp > 0 {
		keep := 0
		for i := range c {
			if c[i].t >= mp {
				c[keep], c[i] = c[i], c[keep]
				keep++
			}
		}
		if keep == 0 { // MinP > 1: only the best survives
			s.rng.Float64() // the draw the reference makes
			return best(c).id(), true
		}
		if keep < len(c) {
			c = c[:keep]
			sum = -1
		}
	}
	if sum < 0 {
		sum = sumT(c)
	}
	r := s.rng.Float64() * sum
	n := selectMass(c, r, true)
	if n == 0 {
		// Rounding left U*sum at or past the total: the last candidate.
		return worst(c).id(), true
	}
	return c[n-1].id(), true
}

// selectMass finds the shortest head, in candidate order, whose mass
// (the sum of t) exceeds target (strict) or reaches it (!strict). It
// rearranges c so that c[:n] holds that head with its worst member at
// c[n-1], and returns n; 0 when no head does.
func selectMass(c []candidate, target float64, strict bool) int {
	reached := func(m float64) bool {
		if strict {
			return m > target
		}
		return m >= target
	}
	lo, hi := 0, len(c)
	acc := 0.0 // the mass of c[:lo], every one better than c[lo:hi]
	for hi-lo > 16 {
		p, mass := partition(c, lo, hi)
		if reached(acc + mass) {
			hi = p
			continue
		}
		acc += mass
		if reached(acc + c[p].t) {
			return p + 1
		}
		acc += c[p].t
		lo = p + 1
	}
	insertionSort(c[lo:hi])
	for i := lo; i < hi; i++ {
		acc += c[i].t
		if reached(acc) {
			return i + 1
		}
	}
	return 0
}

// selectTop rearranges c so that c[:k] holds its k best candidates.
func selectTop(c []candidate, k int) {
	lo, hi := 0, len(c)
	for hi-lo > 16 {
		p, _ := partition(c, lo, hi)
		switch {
		case p == k || p == k-1:
			return
		case p > k:
			hi = p
		default:
			lo = p + 1
		}
	}
	insertionSort(c[lo:hi])
}

// partition splits c[lo:hi] around a median-of-three pivot: better
// candidates before it, worse after. It returns the pivot's place and the
// mass of the better ones.
func partition(c []candidate, lo, hi int) (int, float64) {
	mid := lo + (hi-lo)/2
	a, b, z := lo, mid, hi-1
	if c[a].key < c[b].key {
		a, b = b, a
	}
	if c[b].key < c[z].key {
		b = z
		if c[a].key < c[b].key {
			b = a
		}
	}
	c[b], c[hi-1] = c[hi-1], c[b]
	pivot := c[hi-1].key
	p := lo
	var mass float64
	for i := lo; i < hi-1; i++ {
		if c[i].key > pivot {
			mass += c[i].t
			c[p], c[i] = c[i], c[p]
			p++
		}
	}
	c[p], c[hi-1] = c[hi-1], c[p]
	return p, mass
}

// insertionSort orders a few candidates best first.
func insertionSort(c []candidate) {
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].key > c[j-1].key; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
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
	if words := (len(logits) + 63) / 64; len(s.seen) < words {
		s.seen = make([]uint64, words)
	}
	for _, t := range history {
		if t < 0 || t >= len(logits) || s.seen[t/64]&(1<<(t%64)) != 0 {
			continue
		}
		s.seen[t/64] |= 1 << (t % 64)
		if logits[t] > 0 {
			logits[t] /= pen
		} else {
			logits[t] *= pen
		}
	}
	for _, t := range history {
		if t >= 0 && t < len(logits) {
			s.seen[t/64] = 0
		}
	}
}
