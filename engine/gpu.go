package engine

import (
	"errors"
	"fmt"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/model"
)

// BrickDevice is the GPU's part of a forward pass: every brick from
// token_embed to lm_head and the logits' copy to the host, timed with CUDA
// events (the device fuses bricks into shared kernels and queues them
// without waiting, so they are not timed one by one). With --gpu-layers
// the CPU's embedding and layers come before it as their own bricks. It
// closes the pass as lm_head does on the CPU.
const BrickDevice Brick = "device_forward"

// onDevice is the GPU side of an engine: the device and which sequence
// holds each of its KV cache slots.
type onDevice struct {
	d device
	// first is the first decoder layer on the device: 0 when it runs the
	// whole pass, else the CPU engine runs the embedding and layers
	// 0..first-1 (--gpu-layers) and hands the device their hidden states.
	first  int
	owners []*Sequence // per slot; nil while free
	tick   uint64      // counts passes, for least-recently-used slots
	rows   []cuda.Row  // the pass's rows, reused
	seqs   []*Sequence // each row's sequence, for the probe
	logits []float32   // a batch's logits before they go to their entries
	timer  deviceTimer // made when a probe first listens
	picks  devicePicks // the pass's draws on the device (draw.go)
}

// deviceSeq is a sequence's state on the device.
type deviceSeq struct {
	slot int // -1: none
	// hist holds the tokens at positions 0..pos-1, fed again when the
	// sequence gets a slot back after another sequence took it.
	hist []int
	used uint64 // the pass that last fed it
}

// newOnDevice makes an engine whose forward passes all run on d.
func newOnDevice(cfg *model.Config, opts Options, d device) *Engine {
	return &Engine{Config: cfg, opts: opts, be: cpu.New(opts.Threads),
		dev: &onDevice{d: d, owners: make([]*Sequence, d.Slots())}}
}

// newSplit makes an engine that runs the embedding and decoder layers
// 0..first-1 of m on the CPU and the rest and the output head on d.
func newSplit(m *model.Model, opts Options, d device, first int) (*Engine, error) {
	e, err := New(m.Config, m.Tensors, opts)
	if err != nil {
		return nil, err
	}
	e.dev = &onDevice{d: d, first: first, owners: make([]*Sequence, d.Slots())}
	return e, nil
}

// attach makes s a device sequence of ctx positions at most.
func (g *onDevice) attach(s *Sequence) {
	s.ctx = min(s.ctx, g.d.Context())
	s.dev = &deviceSeq{slot: -1, hist: make([]int, 0, s.ctx)}
}

// cacheBytes is the KV cache memory of ctx positions in layers layers.
func cacheBytes(cfg *model.Config, opts Options, ctx, layers int) int {
	elem := 4
	if opts.KVCacheF16 {
		elem = 2
	}
	_, _, kvDim, _ := cfg.Dims()
	return ctx * layers * 2 * kvDim * elem
}

// DeviceCache says what KV caches the engine keeps on its device: slots
// caches of ctx positions each, bytes in all (zeros on the CPU).
func (e *Engine) DeviceCache() (slots, ctx int, bytes int64) {
	g := e.dev
	if g == nil {
		return 0, 0, 0
	}
	slots, ctx = g.d.Slots(), g.d.Context()
	return slots, ctx, int64(slots) * int64(cacheBytes(e.Config, e.opts, ctx, e.Config.NumLayers-g.first))
}

// acquire gives s a free slot, or the least recently used one of a
// sequence outside the current pass (which feeds its tokens again when it
// next runs).
func (g *onDevice) acquire(s *Sequence) error {
	best := -1
	for i, o := range g.owners {
		if o == nil {
			best = i
			break
		}
		if o.dev.used < g.tick && (best < 0 || o.dev.used < g.owners[best].dev.used) {
			best = i
		}
	}
	if best < 0 {
		return fmt.Errorf("forward: more sequences in one pass than the GPU's %d KV cache slots", len(g.owners))
	}
	if o := g.owners[best]; o != nil {
		o.dev.slot = -1
	}
	g.owners[best], s.dev.slot = s, best
	return nil
}

// release frees the slots of a failed pass's sequences: what their caches
// hold is unknown, so they are fed again.
func (g *onDevice) release(entries []BatchEntry) {
	for _, b := range entries {
		if d := b.Seq.dev; d.slot >= 0 {
			g.owners[d.slot], d.slot = nil, -1
		}
	}
}

// forwardDevice runs a checked batch on the device: entry i's logits go
// to out[i]. A batch of more sequences than the device has slots runs as
// passes of at most that many, each taking the least recently used slots
// (whose sequences are fed again when they next run); the sequences
// advance only when every pass succeeded.
func (e *Engine) forwardDevice(entries []BatchEntry, out [][]float32) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.dev.owners)
	for lo := 0; lo < len(entries); lo += n {
		hi := min(lo+n, len(entries))
		if err := e.passDevice(entries[lo:hi], out[lo:hi]); err != nil {
			return err
		}
	}
	for _, b := range entries {
		b.Seq.dev.hist = append(b.Seq.dev.hist, b.Tokens...)
		b.Seq.pos += len(b.Tokens)
	}
	return nil
}

// passDevice runs one device pass of entries, no more than the device's
// slots, without advancing them.
func (e *Engine) passDevice(entries []BatchEntry, out [][]float32) error {
	g := e.dev
	g.tick++
	for _, b := range entries {
		b.Seq.dev.used = g.tick
	}
	g.rows, g.seqs = g.rows[:0], g.seqs[:0]
	outRows := 0
	for _, b := range entries {
		s, d := b.Seq, b.Seq.dev
		from := s.pos
		if d.slot < 0 {
			if err := g.acquire(s); err != nil {
				return err
			}
			from = 0
		}
		for p := from; p < s.pos; p++ {
			g.rows = append(g.rows, cuda.Row{Slot: d.slot, Token: d.hist[p], Pos: p})
			g.seqs = append(g.seqs, s)
		}
		for i, t := range b.Tokens {
			last := i == len(b.Tokens)-1
			g.rows = append(g.rows, cuda.Row{Slot: d.slot, Token: t, Pos: s.pos + i, Logits: b.AllLogits || last})
			g.seqs = append(g.seqs, s)
			if b.AllLogits || last {
				outRows++
			}
		}
	}
	vocab := e.Config.VocabSize
	sizeLogits(entries, out, vocab)
	dst := out[0]
	if len(entries) > 1 {
		g.logits = g.staging(outRows * vocab)
		dst = g.logits
	}
	pass := func() error { return g.d.Forward(g.rows, dst) }
	// Entries with a Draw draw on the device unless a probe listens (traces
	// and profiles see every pass's logits).
	p, ok := g.d.(picker)
	picking := ok && g.first == 0 && e.probe == nil && g.picks.plan(entries, vocab)
	if picking {
		pass = func() error { return p.ForwardPick(g.rows, g.picks.picks, g.picks.res, dst) }
	}
	if g.first > 0 {
		hidden := e.hiddenStates(g.rows, g.seqs, g.first)
		pass = func() error { return g.d.ForwardHidden(g.rows, hidden, dst) }
	}
	if err := g.timed(e, pass); err != nil {
		g.release(entries)
		return err
	}
	if picking {
		if err := g.picks.draw(entries, dst, vocab); err != nil {
			g.release(entries)
			return err
		}
	}
	if len(entries) > 1 {
		o := 0
		for i := range entries {
			if picking && g.picks.drawn[i] {
				o += vocab // one row, not copied
				continue
			}
			o += copy(out[i], g.logits[o:])
		}
	}
	return nil
}

// hostFloater is a device that lends page-locked host memory
// (cuda.Model.HostFloats), which the device copies logits into at the
// bus's speed.
type hostFloater interface {
	HostFloats(n int) ([]float32, error)
}

// staging returns n floats for a batch's logits: the device's page-locked
// memory where it lends it, else g.logits grown.
func (g *onDevice) staging(n int) []float32 {
	if h, ok := g.d.(hostFloater); ok {
		if v, err := h.HostFloats(n); err == nil {
			return v
		}
		g.logits = nil // HostFloats may have freed it
	}
	return grow(g.logits, n)
}

// hiddenStates runs the embedding and decoder layers 0..layers-1 on the
// CPU for rows (of seqs, whose CPU caches hold those layers) and returns
// the hidden states entering layer layers, a row after another.
func (e *Engine) hiddenStates(rows []cuda.Row, seqs []*Sequence, layers int) []float32 {
	n := len(rows)
	a := e.scratch.get(e.Config, n, 0)
	a.owners = a.seqs
	defer func() { a.owners = nil }()
	for i, r := range rows {
		a.seqs[i], a.pos[i], a.tokens[i] = seqs[i], r.Pos, r.Token
	}
	e.decoderStack(a, n, layers)
	return a.x
}

// timed runs pass, reporting it to the probe as one device_forward brick
// timed with the device's timer when a probe listens.
func (g *onDevice) timed(e *Engine, pass func() error) error {
	if e.probe == nil {
		return pass()
	}
	if g.timer == nil {
		t, err := g.d.Timer()
		if err != nil {
			return fmt.Errorf("forward: device timer: %w", err)
		}
		g.timer = t
	}
	if err := g.timer.Start(); err != nil {
		return err
	}
	errPass := pass()
	elapsed, errStop := g.timer.Stop()
	if err := errors.Join(errPass, errStop); err != nil {
		return err
	}
	e.scratch.owners = g.seqs
	defer func() { e.scratch.owners = nil }()
	e.emit(BrickDevice, -1, elapsed, len(g.rows))
	return nil
}

// close frees the device's memory.
func (g *onDevice) close() {
	if g.timer != nil {
		g.timer.Close()
	}
	g.d.Close()
}

// sizeLogits points out[i] at entry i's logits: its Logits buffer when
// large enough (vocab values per wanted row), else a new slice.
func sizeLogits(entries []BatchEntry, out [][]float32, vocab int) {
	for i, b := range entries {
		k := 1
		if b.AllLogits {
			k = len(b.Tokens)
		}
		if cap(b.Logits) >= k*vocab {
			out[i] = b.Logits[: k*vocab : k*vocab]
		} else {
			out[i] = make([]float32, k*vocab)
		}
	}
}
