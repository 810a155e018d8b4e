package cuda

import (
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/apr-llm/apr/sample"
)

// Greedy decode steps sent ahead. A decode step's argmax (argmax_final)
// also readies the step after it in the pass state: row 0's token becomes
// its answer, its position one more, the step count one more. So greedy
// decoding needs no upload between steps: DecodeArgmax (and ForwardPick
// for one greedy row) sends the step after the one asked for before it
// reads that one's token, and the next call, asking for that token at the
// next position, finds its step already running. The device then runs the
// steps back to back instead of waiting a host round trip between them
// (BenchmarkDecodeHostGap: ~28 us a step of ~800 on the 0.5B Q4_K_M model,
// ~42 us of ~1,330 on 1.5B).
//
// Each step writes its answer to a pair of page-locked host words (by the
// parity of its count: the step sent ahead writes the other pair) and an
// event (one a parity) marks its end. A step sent ahead that the next call
// does not want (a stop token, a sampled draw, another sequence) is left
// to finish: everything after it on the stream runs after it, and what it
// wrote is what no later pass reads before writing it again (the logits,
// the argmax, and its row's keys and values at a position past the
// sequence's end).

// pipeline says whether greedy decode steps send the step after them
// before the host reads their token. A variable for the tests' comparisons
// and the benchmarks (APR_CUDA_TUNE "nopipe").
var pipeline = true

// ahead is a decode step sent before the host read the token it feeds:
// token (the device's answer of the step before) at pos of slot, in a
// pass of pass rows (ggml's attention choice), step count seq.
type ahead struct {
	on                     bool
	slot, pos, pass, token int
	seq                    uint32
}

// stepRing is where decode steps leave their answers.
type stepRing struct {
	// host is page-locked: the (token, logit bits) of the last even step,
	// then of the last odd one; dev is its device address.
	host []uint32
	dev  devptr
	ev   [2]uintptr // recorded after each even / odd step
	seq  uint32     // the count of the next step sent
}

// newRing makes the model's stepRing (the device must be bound).
func (g *Model) newRing() error {
	d := g.dev
	if err := d.hostFuncs(); err != nil {
		return err
	}
	var p unsafe.Pointer
	if err := d.drv.check("cuMemAllocHost 16 bytes", hostMem.alloc(&p, 16)); err != nil {
		return err
	}
	g.ring.host = unsafe.Slice((*uint32)(p), 4)
	if err := d.drv.check("cuMemHostGetDevicePointer", hostMem.devPtr(&g.ring.dev, p, 0)); err != nil {
		return err
	}
	const disableTiming = 2
	for i := range g.ring.ev {
		if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&g.ring.ev[i], disableTiming)); err != nil {
			return err
		}
	}
	return nil
}

// freeRing frees what newRing made (the device must be bound and idle).
func (g *Model) freeRing() {
	for i, e := range g.ring.ev {
		if e != 0 {
			g.dev.drv.cuEventDestroy(e)
			g.ring.ev[i] = 0
		}
	}
	if g.ring.host != nil {
		hostMem.free(unsafe.Pointer(unsafe.SliceData(g.ring.host)))
		g.ring.host, g.ring.dev = nil, 0
	}
}

// sendStep launches the decode step of the state's row 0 (uploaded by
// setState, or readied on the device by the step before) for a row of
// more keys than the split's threshold when long, records its event and
// returns its count.
func (g *Model) sendStep(long bool) (uint32, error) {
	d := g.dev
	g.long = long
	if g.opts.NoGraph {
		if err := g.decodeStep(); err != nil {
			return 0, err
		}
	} else {
		if g.exec[boolInt(long)] == 0 {
			if err := g.capture(); err != nil {
				return 0, err
			}
		}
		if err := d.drv.check("cuGraphLaunch", d.drv.cuGraphLaunch(g.exec[boolInt(long)], d.stream)); err != nil {
			return 0, err
		}
	}
	seq := g.ring.seq
	if err := d.drv.check("cuEventRecord", d.drv.cuEventRecord(g.ring.ev[seq&1], d.stream)); err != nil {
		return 0, err
	}
	g.ring.seq++
	return seq, nil
}

// greedy runs row r's decode step in a pass of pass rows and returns its
// argmax token and that token's logit: from the step sent ahead by the
// call before when r is the row it was sent for, else from a step sent
// now. Unless last is set or r is at the context's last position, it then
// sends the step after r (the token just chosen at the next position)
// before it reads the token (the device must be bound).
func (g *Model) greedy(r Row, pass int, last bool) (int, float32, error) {
	// The step sent ahead was for a checked row at a position inside the
	// context, its token the device's own (awaitStep checked it).
	seq := g.ahead.seq
	if a := g.ahead; !a.on || a.slot != r.Slot || a.pos != r.Pos || a.pass != pass || a.token != r.Token {
		var err error
		if seq, err = g.step(r, pass); err != nil {
			return 0, 0, err
		}
	}
	g.ahead = ahead{}
	next := r.Pos + 1
	send := pipeline && !last && next < g.ctx
	var nextSeq uint32
	if send {
		var err error
		if nextSeq, err = g.sendStep(g.longAt(next)); err != nil {
			return 0, 0, err
		}
	}
	tok, logit, err := g.awaitStep(seq)
	if err != nil {
		return 0, 0, err
	}
	if send {
		g.ahead = ahead{on: true, slot: r.Slot, pos: next, pass: pass, token: tok, seq: nextSeq}
	}
	return tok, logit, nil
}

// awaitStep waits for step seq to end and returns its answer.
func (g *Model) awaitStep(seq uint32) (int, float32, error) {
	d := g.dev
	if err := d.drv.check("cuEventSynchronize", d.drv.cuEventSynchronize(g.ring.ev[seq&1])); err != nil {
		return 0, 0, fmt.Errorf("cuda: decode: %w", err)
	}
	i := 2 * (seq & 1)
	tok, bits := atomic.LoadUint32(&g.ring.host[i]), atomic.LoadUint32(&g.ring.host[i+1])
	if int64(tok) >= int64(g.Config.VocabSize) {
		return 0, 0, fmt.Errorf("cuda: decode: the device chose token %d outside the vocabulary (%d)", tok, g.Config.VocabSize)
	}
	return int(tok), math.Float32frombits(bits), nil
}

// Wait waits until the device has run everything the model sent it, a
// decode step sent ahead (and not asked for) included: a benchmark's way
// to start a timer on an idle device, so that the step after a greedy
// decode's last token is not charged to what it times next.
func (g *Model) Wait() error {
	unlock := g.dev.bind()
	defer unlock()
	return g.dev.sync()
}

// pickGreedy is ForwardPick for one greedy row without edits: the decode
// step's own argmax (greedy), its key in res[0]; last as Pick.Last.
func (g *Model) pickGreedy(r Row, res []Picked, last bool) error {
	unlock := g.dev.bind()
	defer unlock()
	tok, logit, err := g.greedy(r, 1, last)
	if err != nil {
		return err
	}
	g.greedyKey[0] = sample.Key(logit, tok)
	res[0] = Picked{Keys: g.greedyKey[:1]}
	return nil
}
