// Package cpu is the CPU backend: weights stay in their file's encoding
// (F32/F16/BF16 or GGML blocks, usually mmapped) and every operation is split
// over a persistent pool of worker goroutines.
package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// spinLimit is how many polls a worker makes for its next chunk before it
// parks: the operations of a forward pass follow each other within
// microseconds, and waking a parked goroutine costs more than that.
const spinLimit = 1 << 14

// Pool is a fixed set of worker goroutines that run row-block splits of an
// operation. One Pool serves a whole engine; it starts no goroutine per call
// and allocates nothing per call. Between operations the workers spin
// briefly, then park. Run calls are serialised by the caller (one
// operation at a time).
type Pool struct {
	n       int
	workers []*worker
	pending atomic.Int32 // helpers still running the current operation
	wg      sync.WaitGroup
	once    sync.Once
	closed  atomic.Bool
}

// worker is one helper goroutine's mailbox.
type worker struct {
	seq    atomic.Uint64 // bumped by Run for each chunk posted
	parked atomic.Bool
	wake   chan struct{} // one token: Run found the worker parked
	fn     func(lo, hi, worker int)
	lo, hi int
	_      [64]byte // keep mailboxes on separate cache lines
}

// NewPool starts a pool with n workers (n < 1 means runtime.NumCPU()).
func NewPool(n int) *Pool {
	if n < 1 {
		n = runtime.NumCPU()
	}
	p := &Pool{n: n}
	// The calling goroutine does the first chunk itself, so n-1 helpers suffice.
	for i := 1; i < n; i++ {
		w := &worker{wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		p.wg.Add(1)
		go p.loop(w, i)
	}
	return p
}

// loop runs one helper: wait for a new chunk (spinning, then parked), run
// it, report it done.
func (p *Pool) loop(w *worker, id int) {
	defer p.wg.Done()
	var last uint64
	for {
		for spins := 0; w.seq.Load() == last; spins++ {
			if spins < spinLimit {
				if spins&255 == 255 {
					runtime.Gosched()
				}
				continue
			}
			w.parked.Store(true)
			if w.seq.Load() == last {
				<-w.wake
			}
			w.parked.Store(false)
			spins = 0
		}
		last = w.seq.Load()
		if p.closed.Load() {
			return
		}
		w.fn(w.lo, w.hi, id)
		w.fn = nil
		p.pending.Add(-1)
	}
}

// post hands a chunk to worker w.
func (w *worker) post(fn func(lo, hi, worker int), lo, hi int) {
	w.fn, w.lo, w.hi = fn, lo, hi
	w.seq.Add(1)
	if w.parked.Load() {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Threads returns the number of workers.
func (p *Pool) Threads() int { return p.n }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.once.Do(func() {
		p.closed.Store(true)
		for _, w := range p.workers {
			w.post(nil, 0, 0)
		}
		p.wg.Wait()
	})
}

// Run splits [0, total) into at most Threads() contiguous chunks whose sizes
// are multiples of grain (except the last) and runs fn on each, the caller's
// goroutine taking the first. worker is the chunk index, usable to pick
// per-worker scratch space. fn should be a long-lived function value (a
// closure built per call is allocated per call).
func (p *Pool) Run(total, grain int, fn func(lo, hi, worker int)) {
	if total <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	blocks := (total + grain - 1) / grain
	chunks := min(p.n, blocks)
	if chunks <= 1 {
		fn(0, total, 0)
		return
	}
	per, extra := blocks/chunks, blocks%chunks
	end := func(c, lo int) int {
		nb := per
		if c < extra {
			nb++
		}
		return min(lo+nb*grain, total)
	}
	first := end(0, 0)
	p.pending.Store(int32(chunks - 1))
	lo := first
	for c := 1; c < chunks; c++ {
		hi := end(c, lo)
		p.workers[c-1].post(fn, lo, hi)
		lo = hi
	}
	fn(0, first, 0)
	for spins := 0; p.pending.Load() != 0; spins++ {
		if spins&63 == 63 {
			runtime.Gosched()
		}
	}
}
