// Package cpu is the CPU backend: weights stay in their file's encoding
// (F32/F16/BF16 or GGML blocks, usually mmapped) and every operation is split
// over a persistent pool of worker goroutines.
package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// spinLimit is how many polls a helper makes for the next operation before
// it parks: the operations of a forward pass follow each other within
// microseconds, and waking a parked goroutine costs more than that.
const spinLimit = 1 << 14

// pureSpins is how many of those polls run before the waiting goroutine
// starts yielding to the scheduler (Gosched takes the scheduler's lock:
// too costly for the short waits inside one operation).
const pureSpins = 1 << 11

// guide sets the chunk sizes (guided self-scheduling): a goroutine takes
// 1/(guide*threads) of the blocks still left, at least one block. The
// first chunks are long (few calls, long sequential runs of weights), the
// last ones short, so that the goroutines finish together even when one of
// them runs late (another process holds its core).
const guide = 2

// Pool is a fixed set of worker goroutines that run row-block splits of an
// operation. One Pool serves a whole engine; it starts no goroutine per call
// and allocates nothing per call. The caller's goroutine and the helpers
// take chunks from a shared counter; the caller waits only for chunks
// already started. Between operations the helpers spin briefly, then park.
// Run calls must not overlap (the engine runs one operation at a time).
type Pool struct {
	n       int
	helpers []*helper
	seq     atomic.Uint64 // bumped for each operation
	// next packs the operation's block count (high 32 bits) with the next
	// block to take (low 32 bits); a chunk is taken by compare-and-swap. A
	// helper that arrives late, after the operation ended, reads a count
	// that its block reaches and stops; one whose swap succeeds holds blocks
	// of the operation now published (a swap from a stale value succeeds
	// only on the current operation's own value), so it never reads a field
	// of another operation unsynchronised.
	next   atomic.Uint64
	done   atomic.Int64 // blocks finished
	wg     sync.WaitGroup
	once   sync.Once
	closed atomic.Bool

	// The operation in flight, written before next is reset and seq bumped;
	// read only by a goroutine holding one of its chunks.
	fn           func(lo, hi, worker int)
	total, grain int
}

// helper is one helper goroutine's parking place.
type helper struct {
	parked atomic.Bool
	wake   chan struct{} // one token: Run found the helper parked
	_      [64]byte      // keep helpers on separate cache lines
}

// NewPool starts a pool with n workers (n < 1 means runtime.NumCPU()).
func NewPool(n int) *Pool {
	if n < 1 {
		n = runtime.NumCPU()
	}
	p := &Pool{n: n}
	// The calling goroutine works too, so n-1 helpers suffice.
	for i := 1; i < n; i++ {
		h := &helper{wake: make(chan struct{}, 1)}
		p.helpers = append(p.helpers, h)
		p.wg.Add(1)
		go p.loop(h, i)
	}
	return p
}

// loop runs one helper: wait for a new operation (spinning, then parked)
// and take chunks of it.
func (p *Pool) loop(h *helper, id int) {
	defer p.wg.Done()
	var last uint64
	for {
		for spins := 0; p.seq.Load() == last; spins++ {
			if spins < spinLimit {
				if spins >= pureSpins && spins&255 == 255 {
					runtime.Gosched()
				}
				continue
			}
			h.parked.Store(true)
			if p.seq.Load() == last {
				<-h.wake
			}
			h.parked.Store(false)
			spins = 0
		}
		last = p.seq.Load()
		if p.closed.Load() {
			return
		}
		p.work(id)
	}
}

// work takes chunks of the current operation until none is left.
func (p *Pool) work(id int) {
	for {
		v := p.next.Load()
		b, blocks := int(uint32(v)), int(v>>32)
		if b >= blocks {
			return
		}
		nb := max(1, (blocks-b)/(guide*p.n))
		if !p.next.CompareAndSwap(v, v+uint64(nb)) {
			continue
		}
		lo := b * p.grain
		p.fn(lo, min(lo+nb*p.grain, p.total), id)
		p.done.Add(int64(nb))
	}
}

// Threads returns the number of workers.
func (p *Pool) Threads() int { return p.n }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.once.Do(func() {
		p.closed.Store(true)
		p.post()
		p.wg.Wait()
	})
}

// post publishes the operation and wakes parked helpers.
func (p *Pool) post() {
	p.seq.Add(1)
	for _, h := range p.helpers {
		if h.parked.Load() {
			select {
			case h.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Run splits [0, total) into contiguous chunks whose sizes are multiples
// of grain (except the last) and runs fn on each, on the caller's goroutine
// and the helpers. worker (0 for the caller, < Threads()) identifies the
// goroutine running the chunk, usable to pick per-worker scratch space; one
// worker runs its chunks one after another. fn should be a long-lived
// function value (a closure built per call is allocated per call).
func (p *Pool) Run(total, grain int, fn func(lo, hi, worker int)) {
	if total <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	blocks := (total + grain - 1) / grain
	if p.n == 1 || blocks <= 1 {
		fn(0, total, 0)
		return
	}
	p.fn, p.total, p.grain = fn, total, grain
	p.done.Store(0)
	p.next.Store(uint64(blocks) << 32)
	p.post()
	p.work(0)
	for spins := 0; p.done.Load() != int64(blocks); spins++ {
		if spins >= pureSpins && spins&63 == 63 {
			runtime.Gosched()
		}
	}
	p.fn = nil
}
