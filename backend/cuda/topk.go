package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// MaxTopK is the most candidates a Pick may ask for (kernels/topk.cuh's
// PICK_MAXK); a larger top-k needs the full logits.
const MaxTopK = 256

const (
	pickInts    = 8    // int32 parameters a picked row (topk.cuh)
	pickPart    = 4096 // the most logits one pick_part block keeps in shared memory
	pickThreads = 256
)

// Pick says what ForwardPick returns for one logits row instead of its
// vocabulary of logits: the K best candidates as keys (sample.Key: the
// scaled logit's order, then the lower id), after the row's penalties.
type Pick struct {
	// K is the number of candidates, 1..MaxTopK; 0 asks for the full row
	// as Forward returns it (the edits are not applied).
	K int
	// Temp divides the logits before they are ordered (1: not at all);
	// ignored when Greedy.
	Temp float32
	// Greedy asks for sample.Argmax's answer (K must be 1): keys of the raw
	// logits, -Inf logits are candidates, a NaN logit 0 answers token 0.
	// Otherwise NaN and -Inf (scaled) logits are never candidates.
	Greedy bool
	// Edits are the row's penalties (sample.Penalties), each token at most
	// once; Penalty is the repeat penalty's factor.
	Edits   []Edit
	Penalty float32
	// Last says the caller asks for no step after this row's: its token
	// ends the sequence's generation (a length limit or the context's
	// end), so a greedy row
	// sends no step ahead (ahead.go) for the device to run in vain.
	Last bool
}

// Edit is sample.Edit: Sub is subtracted from the token's logit, then with
// Repeat the repeat penalty divides a positive logit and multiplies another.
type Edit struct {
	Token  int32
	Sub    float32
	Repeat bool
}

// Picked is what ForwardPick returns for a row. Keys are its candidates,
// best first (owned by the Model: valid until its next ForwardPick). Full
// says that the row's penalized logits were written to the logits instead,
// in the row's place as Forward writes them: the row asked for them (K 0),
// or the candidates do not decide a draw (a row that is not Greedy with
// fewer than K candidates, or whose best scaled logit is +Inf).
type Picked struct {
	Keys []uint64
	Full bool
}

// selector is ForwardPick's state: device buffers made on first use, the
// host's staging, and the call's picks and results.
type selector struct {
	in, parts, out devptr
	inCap          int // int32 that in holds
	nparts, part   int // pick_part's blocks a row, logits a block
	host           []int32
	keys           []uint64 // the call's results, group after group
	used           int      // keys taken by the call's groups so far
	picks          []Pick
	res            []Picked
}

// ForwardPick is Forward for rows whose logits the caller samples from:
// picks[i] says what logits row i (the i-th row with Logits) returns in
// res[i]. Only the candidates (8 bytes each) come back, and the full logits
// of the rows that Picked.Full names, which go to logits as Forward writes
// them (logits must have Forward's size). Rows of a chunked pass are
// picked group by group as the LM head makes their logits.
func (g *Model) ForwardPick(rows []Row, picks []Pick, res []Picked, logits []float32) error {
	want := 0
	for _, r := range rows {
		if r.Logits {
			want++
		}
	}
	if err := g.beginPick(picks, res, want); err != nil {
		return err
	}
	if len(rows) == 1 && want == 1 && picks[0].Greedy && len(picks[0].Edits) == 0 && g.first == 0 {
		// The decode step's argmax is the greedy pick; the step after it
		// goes ahead (ahead.go).
		g.endPick()
		return g.pickGreedy(rows[0], res, picks[0].Last)
	}
	defer g.endPick()
	return g.Forward(rows, logits)
}

// beginPick checks the picks of want logits rows and readies the selector
// for them: fetch then picks instead of copying logits, until endPick.
func (g *Model) beginPick(picks []Pick, res []Picked, want int) error {
	if len(picks) < want || len(res) < want {
		return fmt.Errorf("cuda: forward pick: %d logits rows, %d picks and %d results", want, len(picks), len(res))
	}
	total := want
	for i, p := range picks[:want] {
		switch {
		case p.K < 0 || p.K > MaxTopK:
			return fmt.Errorf("cuda: forward pick: row %d asks for %d candidates, outside 0..%d", i, p.K, MaxTopK)
		case p.Greedy && p.K != 1:
			return fmt.Errorf("cuda: forward pick: greedy row %d asks for %d candidates", i, p.K)
		case !p.Greedy && p.K > 0 && !(p.Temp > 0 && p.Temp <= math.MaxFloat32):
			return fmt.Errorf("cuda: forward pick: row %d's temperature %v", i, p.Temp)
		case len(p.Edits) > 0 && !(p.Penalty > 0):
			return fmt.Errorf("cuda: forward pick: row %d's repeat penalty %v", i, p.Penalty)
		}
		total += p.K
	}
	if g.picker == nil {
		g.picker = &selector{}
	}
	s := g.picker
	if cap(s.keys) < total {
		s.keys = make([]uint64, total)
	}
	s.keys, s.used, s.picks, s.res = s.keys[:cap(s.keys)], 0, picks[:want], res[:want]
	return nil
}

// endPick ends what beginPick began.
func (g *Model) endPick() { g.picker.picks, g.picker.res = nil, nil }

// fetch hands the host the k logits rows in g.logits, the pass's logits
// rows o..o+k-1: their logits to logits (from row o), or in a ForwardPick
// call what their picks ask for.
func (g *Model) fetch(logits []float32, o, k int) error {
	vocab := g.Config.VocabSize
	if g.picker == nil || g.picker.picks == nil {
		return g.dev.downloadF32(logits[o*vocab:(o+k)*vocab], g.logits)
	}
	return g.picker.run(g, logits, o, k)
}

// buffers makes the selector's device buffers for k rows and edits edits
// the first time, or when the edits outgrow them (the old buffer stays
// with the model's allocations until Close: growth at least doubles).
func (s *selector) buffers(g *Model, edits int) error {
	rows := g.logitRows
	if s.parts == 0 {
		vocab := g.Config.VocabSize
		s.nparts = ceilDiv(vocab, pickPart)
		s.part = ceilDiv(vocab, s.nparts)
		var err error
		if s.parts, err = g.track(g.dev.alloc(8 * rows * s.nparts * MaxTopK)); err != nil {
			return err
		}
		if s.out, err = g.track(g.dev.alloc(8 * rows * (1 + MaxTopK))); err != nil {
			return err
		}
	}
	if n := rows*pickInts + 3*edits; n > s.inCap {
		n = max(n, 2*s.inCap)
		p, err := g.track(g.dev.alloc(4 * n))
		if err != nil {
			return err
		}
		s.in, s.inCap = p, n
	}
	return nil
}

// run picks the k rows of g.logits (logits rows o..o+k-1 of the call).
func (s *selector) run(g *Model, logits []float32, o, k int) error {
	vocab := g.Config.VocabSize
	picks, res := s.picks[o:o+k], s.res[o:o+k]
	edits, sel := 0, 0
	for _, p := range picks {
		if p.K > 0 {
			edits += len(p.Edits)
			sel++
		}
	}
	if err := s.buffers(g, edits); err != nil {
		return fmt.Errorf("cuda: forward pick: %w", err)
	}
	// The rows' parameters, then their edits; the counts of the output
	// come first (k of them), then each row's keys.
	h := s.host[:0]
	e, off := 0, k
	for i, p := range picks {
		if p.K == 0 {
			continue
		}
		temp := p.Temp
		if p.Greedy {
			temp = 1
		}
		h = append(h, int32(p.K), int32(math.Float32bits(temp)), int32(boolInt(p.Greedy)), int32(e), int32(len(p.Edits)),
			int32(math.Float32bits(p.Penalty)), int32(off), int32(i))
		e += len(p.Edits)
		off += p.K
	}
	for _, p := range picks {
		if p.K == 0 {
			continue
		}
		for _, ed := range p.Edits {
			h = append(h, ed.Token, int32(math.Float32bits(ed.Sub)), int32(boolInt(ed.Repeat)))
		}
	}
	s.host = h
	d := g.dev
	out := s.keys[s.used : s.used+off]
	s.used += off
	if sel > 0 {
		if err := d.drv.check("cuMemcpyHtoDAsync (picks)", d.drv.cuMemcpyHtoDAsync(s.in, unsafe.Pointer(&h[0]), uintptr(4*len(h)), d.stream)); err != nil {
			return err
		}
		if err := s.launch(g, sel, edits); err != nil {
			return fmt.Errorf("cuda: forward pick: %w", err)
		}
		if err := d.download(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 8*off), s.out); err != nil {
			return fmt.Errorf("cuda: forward pick: %w", err)
		}
	}
	j, at := 0, k
	for i, p := range picks {
		res[i] = Picked{}
		if p.K > 0 {
			n := int(out[j])
			res[i].Keys = out[at : at+n]
			j, at = j+1, at+p.K
			if p.Greedy || (n == p.K && out[at-p.K]>>32 != posInfKey) {
				continue
			}
		}
		res[i].Full = true
		row := o + i
		if err := d.downloadF32(logits[row*vocab:(row+1)*vocab], g.logits+devptr(4*i*vocab)); err != nil {
			return fmt.Errorf("cuda: forward pick: %w", err)
		}
	}
	return nil
}

// posInfKey is the high half of the key of a +Inf scaled logit.
const posInfKey = 0xff800000

// launch applies the edits and selects the candidates of the sel rows
// whose parameters s.in holds.
func (s *selector) launch(g *Model, sel, edits int) error {
	d := g.dev
	vocab := g.Config.VocabSize
	if edits > 0 {
		if err := d.launch("pick_penalize", sel, pickThreads, 0, g.logits, vocab, s.in, s.in+devptr(4*pickInts*sel)); err != nil {
			return err
		}
	}
	if err := d.launch2("pick_part", s.nparts, sel, pickThreads, 8*s.part, g.logits, vocab, s.part, s.in, s.parts); err != nil {
		return err
	}
	return d.launch("pick_merge", sel, pickThreads, 0, s.parts, s.nparts, s.in, g.logits, vocab, s.out)
}
