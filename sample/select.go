package sample

import (
	"cmp"
	"math"
	"slices"
)

// A device that holds the logits (backend/cuda) can spare the copy of a
// whole vocabulary to the host: it applies the penalties that Penalties
// lists, keeps the few best candidates that Selection asks for and hands
// back their keys (Key), from which SampleKeys draws the token that Sample
// would have drawn from the full logits, with the same random stream.

// Selection is what a device must return for SampleKeys to draw a row's
// token: the K best keys (Key) of the row's penalized logits, each divided
// by Temp unless Temp is 1, leaving out NaN and (unless Greedy) -Inf ones.
// Greedy asks for Argmax's answer: K is 1, Temp 1, -Inf logits are
// candidates, and a NaN logit at index 0 makes token 0 the answer.
type Selection struct {
	K      int
	Temp   float32
	Greedy bool
}

// Selection returns what a device must return for the sampler to draw
// without the full logits; ok is false when it needs them: top-k off, or
// above maxK (or exactMax, past which Sample draws in another arithmetic).
func (s *Sampler) Selection(maxK int) (sel Selection, ok bool) {
	if s.Greedy() {
		return Selection{K: 1, Temp: 1, Greedy: true}, true
	}
	k := s.p.TopK
	if k <= 0 || k > maxK || k > exactMax {
		return Selection{}, false
	}
	return Selection{K: k, Temp: float32(s.p.Temperature)}, true
}

// Edit is a penalty on one token's logit: Sub is subtracted from it
// (ApplyPresenceFrequency's presence and frequency), then, with Repeat, the
// repetition penalty applies (a positive logit divided by the factor, any
// other multiplied), both in float32 as Sample's host code does.
type Edit struct {
	Token  int
	Sub    float32
	Repeat bool
}

// Penalties lists, for a vocabulary of vocab tokens, the edits that
// ApplyPresenceFrequency(logits, generated, presence, frequency) followed
// by Sample(logits, history)'s repetition penalty make, one per token,
// appended to dst[:0]; pen is the repetition penalty's factor (1: none).
// Applied with ApplyEdits they give bit for bit the logits Sample draws
// from. It allocates nothing once the sampler's buffers have grown.
func (s *Sampler) Penalties(dst []Edit, vocab int, history, generated []int, presence, frequency float64) (edits []Edit, pen float32) {
	dst = dst[:0]
	if s.at == nil {
		s.at = map[int]int{}
	}
	clear(s.at)
	// s.at holds a token's count while counting, then -(its edit's index+1).
	if (presence != 0 || frequency != 0) && len(generated) > 0 {
		for _, t := range generated {
			if t >= 0 && t < vocab {
				s.at[t]++
			}
		}
		for _, t := range generated {
			if c := s.at[t]; c > 0 {
				dst = append(dst, Edit{Token: t, Sub: float32(float64(c)*frequency + presence)})
				s.at[t] = -len(dst)
			}
		}
	}
	pen = float32(s.p.RepeatPenalty)
	if pen <= 0 || pen == 1 || len(history) == 0 {
		return dst, 1
	}
	if n := s.p.RepeatLastN; n >= 0 && n < len(history) {
		history = history[len(history)-n:]
	}
	for _, t := range history {
		if t < 0 || t >= vocab {
			continue
		}
		switch i := s.at[t]; {
		case i == 0:
			dst = append(dst, Edit{Token: t, Repeat: true})
			s.at[t] = -len(dst)
		default:
			dst[-i-1].Repeat = true
		}
	}
	return dst, pen
}

// ApplyEdits applies Penalties' edits to logits in place, as a device does.
func ApplyEdits(logits []float32, edits []Edit, pen float32) {
	for _, e := range edits {
		if e.Token < 0 || e.Token >= len(logits) {
			continue
		}
		l := logits[e.Token] - e.Sub
		if e.Repeat {
			if l > 0 {
				l /= pen
			} else {
				l *= pen
			}
		}
		logits[e.Token] = l
	}
}

// Key is the order of candidates: larger for the larger (scaled) logit x,
// then for the lower token id; the device returns candidates as keys.
func Key(x float32, id int) uint64 { return makeKey(x, id) }

// KeyID is the token id of a key.
func KeyID(key uint64) int { return candidate{key: key}.id() }

// SampleKeys draws the next token from a device's candidates for the
// sampler's Selection, in any order: the token Sample would draw from the
// full logits. ok is false, and nothing is drawn, when the candidates do not
// decide the draw (fewer than K of them, or a scaled logit of +Inf): then
// SamplePenalized needs the full penalized logits.
func (s *Sampler) SampleKeys(keys []uint64) (id int, ok bool) {
	if s.Greedy() {
		if len(keys) == 0 {
			return 0, true
		}
		b := keys[0]
		for _, k := range keys {
			b = max(b, k)
		}
		return KeyID(b), true
	}
	sel, ok := s.Selection(exactMax)
	if !ok || len(keys) != sel.K {
		return 0, false
	}
	c := s.cand[:0]
	for _, k := range keys {
		c = append(c, candidate{key: k})
	}
	s.cand = c
	if math.IsInf(float64(best(c).logit()), 1) {
		return 0, false
	}
	return s.sampleSorted(c), true
}

// SamplePenalized is Sample on logits that the penalties (Penalties,
// ApplyEdits) have already been applied to.
func (s *Sampler) SamplePenalized(logits []float32) int {
	return s.sample(logits)
}

// Keys returns the keys that a device returns for sel on logits (already
// penalized), best first, appended to dst[:0]: the reference that the
// device's selection is tested against, and the host's own where it lacks
// one. It sorts every candidate.
func (sel Selection) Keys(logits []float32, dst []uint64) []uint64 {
	dst = dst[:0]
	if sel.Greedy && len(logits) > 0 && logits[0] != logits[0] {
		return append(dst, Key(0, 0)&math.MaxUint32) // token 0, as Argmax answers
	}
	for i, l := range logits {
		x := l
		if !sel.Greedy && sel.Temp != 1 {
			x = l / sel.Temp
		}
		if x != x || (!sel.Greedy && math.IsInf(float64(x), -1)) {
			continue
		}
		dst = append(dst, Key(x, i))
	}
	slices.SortFunc(dst, func(a, b uint64) int { return cmp.Compare(b, a) })
	return dst[:min(len(dst), sel.K)]
}
