// Package cpu is the CPU backend: weights stay in their file's encoding
// (F32/F16/BF16 or GGML blocks, usually mmapped) and every operation is split
// over a persistent pool of worker goroutines.
package cpu

import (
	"runtime"
	"sync"
)

// Pool is a fixed set of worker goroutines that run row-block splits of an
// operation. One Pool serves a whole engine; it starts no goroutine per call.
type Pool struct {
	n     int
	tasks chan task
	wg    sync.WaitGroup
	once  sync.Once
}

type task struct {
	fn     func(lo, hi, worker int)
	lo, hi int
	worker int
	done   *sync.WaitGroup
}

// NewPool starts a pool with n workers (n < 1 means runtime.NumCPU()).
func NewPool(n int) *Pool {
	if n < 1 {
		n = runtime.NumCPU()
	}
	p := &Pool{n: n, tasks: make(chan task, n)}
	// The calling goroutine does the first chunk itself, so n-1 helpers suffice.
	for i := 1; i < n; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for t := range p.tasks {
				t.fn(t.lo, t.hi, t.worker)
				t.done.Done()
			}
		}()
	}
	return p
}

// Threads returns the number of workers.
func (p *Pool) Threads() int { return p.n }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.once.Do(func() {
		close(p.tasks)
		p.wg.Wait()
	})
}

// Run splits [0, total) into at most Threads() contiguous chunks whose sizes
// are multiples of grain (except the last) and runs fn on each, the caller's
// goroutine taking the first. worker is the chunk index, usable to pick
// per-worker scratch space.
func (p *Pool) Run(total, grain int, fn func(lo, hi, worker int)) {
	if total <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	blocks := (total + grain - 1) / grain
	chunks := p.n
	if chunks > blocks {
		chunks = blocks
	}
	if chunks <= 1 {
		fn(0, total, 0)
		return
	}
	var done sync.WaitGroup
	per := blocks / chunks
	extra := blocks % chunks
	lo := 0
	var first [2]int
	for c := 0; c < chunks; c++ {
		nb := per
		if c < extra {
			nb++
		}
		hi := lo + nb*grain
		if hi > total {
			hi = total
		}
		if c == 0 {
			first = [2]int{lo, hi}
		} else {
			done.Add(1)
			p.tasks <- task{fn: fn, lo: lo, hi: hi, worker: c, done: &done}
		}
		lo = hi
	}
	fn(first[0], first[1], 0)
	done.Wait()
}
