package engine

import (
	"errors"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/sample"
)

// Draw asks a forward pass on the GPU to draw an entry's next token
// itself: the device applies the penalties and keeps the sampler's top-k
// (or argmax) candidates, and only those come back to the host, which
// draws from them the token Sampler.Sample would draw from the full
// logits (package sample's Selection). Where it can't (on the CPU, with a
// probe listening, top-k off or above cuda.MaxTopK, all logits asked for),
// the entry's logits come back as without it and Drawn stays false: the
// caller samples them as before.
type Draw struct {
	Sampler *sample.Sampler
	// History is the tokens so far, prompt and output (the repeat
	// penalty's); Generated the output alone with OpenAI's Presence and
	// Frequency penalties (sample.ApplyPresenceFrequency), applied first.
	History             []int
	Generated           []int
	Presence, Frequency float64
	// Last says the drawn token ends the generation whatever it is (its
	// length limit or the context's end): the device sends no greedy step
	// ahead after it (cuda.Pick.Last).
	Last bool

	// Token is the drawn token when Drawn; the entry's logits are then
	// not written.
	Token int
	Drawn bool
}

// picker is a device that selects candidates (cuda.Model.ForwardPick).
type picker interface {
	ForwardPick(rows []cuda.Row, picks []cuda.Pick, res []cuda.Picked, logits []float32) error
}

// devicePicks are a pass's picks, reused from pass to pass.
type devicePicks struct {
	picks  []cuda.Pick
	res    []cuda.Picked
	edits  []cuda.Edit
	sedits []sample.Edit
	span   [][2]int // each pick's edits in edits
	drawn  []bool   // per entry: drawn on the device
}

// plan fills p's picks for entries (one per logits row, in row order) and
// reports whether any entry draws on the device.
func (p *devicePicks) plan(entries []BatchEntry, vocab int) bool {
	p.picks, p.span, p.edits = p.picks[:0], p.span[:0], p.edits[:0]
	p.drawn = grow(p.drawn, len(entries))
	some := false
	for i, b := range entries {
		p.drawn[i] = false
		if b.AllLogits {
			for range b.Tokens {
				p.picks = append(p.picks, cuda.Pick{})
				p.span = append(p.span, [2]int{})
			}
			continue
		}
		d := b.Draw
		var sel sample.Selection
		ok := d != nil && d.Sampler != nil
		if ok {
			sel, ok = d.Sampler.Selection(cuda.MaxTopK)
		}
		if !ok {
			p.picks = append(p.picks, cuda.Pick{})
			p.span = append(p.span, [2]int{})
			continue
		}
		var pen float32
		p.sedits, pen = d.Sampler.Penalties(p.sedits, vocab, d.History, d.Generated, d.Presence, d.Frequency)
		from := len(p.edits)
		for _, e := range p.sedits {
			p.edits = append(p.edits, cuda.Edit{Token: int32(e.Token), Sub: e.Sub, Repeat: e.Repeat})
		}
		p.picks = append(p.picks, cuda.Pick{K: sel.K, Temp: sel.Temp, Greedy: sel.Greedy, Penalty: pen, Last: d.Last})
		p.span = append(p.span, [2]int{from, len(p.edits)})
		p.drawn[i], some = true, true
	}
	for i, s := range p.span {
		if s[1] > s[0] {
			p.picks[i].Edits = p.edits[s[0]:s[1]]
		}
	}
	p.res = grow(p.res, len(p.picks))
	return some
}

// draw draws the tokens of the entries that p planned on the device, after
// the pass wrote the rows that came back in full to logits (vocab floats a
// logits row, in row order).
func (p *devicePicks) draw(entries []BatchEntry, logits []float32, vocab int) error {
	o := 0
	for i, b := range entries {
		if !p.drawn[i] {
			if b.AllLogits {
				o += len(b.Tokens)
			} else {
				o++
			}
			continue
		}
		d, r := b.Draw, p.res[o]
		if r.Full {
			d.Token = d.Sampler.SamplePenalized(logits[o*vocab : (o+1)*vocab])
		} else {
			var ok bool
			if d.Token, ok = d.Sampler.SampleKeys(r.Keys); !ok {
				return errors.New("forward: the device's candidates do not decide the draw")
			}
		}
		d.Drawn = true
		o++
	}
	return nil
}
