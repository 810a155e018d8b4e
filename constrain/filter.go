package constrain

import "math"

// Vocab is the byte strings of a tokenizer's tokens, indexed by id; special
// tokens (which decode to control markers, not JSON) should be nil.
type Vocab [][]byte

// Filter masks the tokens that cannot continue a valid document. It
// implements the server's token filter (Mask, Accept, Done). It is not
// safe for concurrent use.
type Filter struct {
	m       *Machine
	scratch *Machine
	vocab   Vocab
	eos     map[int]bool
}

// NewFilter returns a filter at the start of a document of schema s.
// Tokens in eos are allowed only once the document is complete.
func NewFilter(s *Schema, vocab Vocab, eos []int) *Filter {
	f := &Filter{m: s.NewMachine(), scratch: s.NewMachine(), vocab: vocab, eos: map[int]bool{}}
	for _, id := range eos {
		f.eos[id] = true
	}
	return f
}

// Mask sets the logits of tokens that would make the output invalid to
// -Inf. Once the document is complete only end-of-sequence tokens remain.
func (f *Filter) Mask(logits []float32) {
	inf := float32(math.Inf(-1))
	for id := range logits {
		if f.eos[id] {
			if !f.m.Done() {
				logits[id] = inf
			}
			continue
		}
		if !f.Allowed(id) {
			logits[id] = inf
		}
	}
}

// Allowed reports whether token id can come next.
func (f *Filter) Allowed(id int) bool {
	if id < 0 || id >= len(f.vocab) || len(f.vocab[id]) == 0 || f.m.Done() {
		return false
	}
	b := f.vocab[id]
	f.scratch.CopyFrom(f.m)
	return f.scratch.Feed(b)
}

// Accept advances past token id (ids that are not allowed leave the state
// invalid; the caller only accepts tokens that Mask let through).
func (f *Filter) Accept(id int) {
	if id >= 0 && id < len(f.vocab) {
		f.m.Feed(f.vocab[id])
	}
}

// Done reports whether the document is complete.
func (f *Filter) Done() bool { return f.m.Done() }
