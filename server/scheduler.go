package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/sample"
	"github.com/apr-llm/apr/tokenizer"
	"github.com/apr-llm/apr/trace"
)

// Errors of the scheduler, mapped to HTTP statuses by the handlers.
var (
	// ErrQueueFull means every slot is busy and the waiting queue is full.
	ErrQueueFull = errors.New("server busy: the request queue is full")
	// ErrShuttingDown means the server no longer accepts requests.
	ErrShuttingDown = errors.New("server is shutting down")
)

// TokenFilter restricts which tokens may come next (constrained decoding).
// Mask sets the logits of forbidden tokens to -Inf; Accept advances the
// filter past the chosen token; Done reports that the output is complete and
// generation should end.
type TokenFilter interface {
	Mask(logits []float32)
	Accept(id int)
	Done() bool
}

// job is one generation request as the scheduler runs it.
type job struct {
	ctx         context.Context
	prompt      []int
	maxTokens   int // clamped to the context by submit
	sampler     *sample.Sampler
	presence    float64
	frequency   float64
	stop        []string
	logprobs    bool
	topLogprobs int
	filter      TokenFilter
	traceLevel  trace.Level // X-Trace-Level: the request's own trace, or none
	events      chan event
	enqueued    time.Time
	cancelStep  atomic.Int64 // decode step at which ctx was cancelled, -1 before
}

// tokenInfo is one generated token with its log-probabilities.
type tokenInfo struct {
	id      int
	logprob float64
	top     []sample.TokenLogprob
}

// event is what the scheduler tells a request's handler: new text after a
// step, or the end.
type event struct {
	text   string
	token  *tokenInfo // nil for the final event
	done   bool
	finish string // "stop" or "length" when done
	usage  usage
	err    error
	trace  []any // the final event of a traced request: its trace lines
}

// usage counts a request's tokens.
type usage struct {
	prompt, cached, completion int
}

// slot is one sequence of the running batch with the KV cache it keeps
// between requests (for prefix reuse).
type slot struct {
	seq      *engine.Sequence
	cached   []int // tokens whose keys and values seq holds
	lastUsed int64
	job      *job
	// per request
	pending   []int // prompt tokens still to feed
	next      int   // token to feed at the next decode step (-1: none)
	history   []int // prompt and output, for the repetition penalty
	generated []int
	dec       *tokenizer.StreamDecoder
	stop      *engine.StopMatcher
	reuse     int
	firstTok  time.Time
	traced    bool // a recorder follows seq for this request
}

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	Parallel    int // sequences decoded together (slots)
	CtxSize     int // KV cache positions per slot
	QueueSize   int // requests waiting for a slot before 503
	BatchTokens int // prompt tokens fed per step, across slots
	// Probe is the server-wide probe (--trace) already installed on the
	// engine, which keeps every brick while requests are traced.
	Probe engine.Probe
}

// Scheduler runs continuous batching: requests join the running batch
// between steps, each step feeds every active sequence (a chunk of a prompt
// or one decode token) through one ForwardBatch, and finished or cancelled
// sequences leave at once.
type Scheduler struct {
	eng     *engine.Engine
	tok     *tokenizer.Tokenizer
	eos     map[int]bool
	opts    SchedulerOptions
	queue   chan *job
	quit    chan struct{}
	done    chan struct{}
	slots   []*slot
	metrics *metrics
	tracer  *tracer

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against submit
	closed    bool
	steps     atomic.Int64
	active    atomic.Int64
	// freedAfterCancel records, for tests, how many steps ran between a
	// cancellation and the release of its slot (the largest seen).
	freedAfterCancel atomic.Int64
}

// NewScheduler starts a scheduler over eng.
func NewScheduler(eng *engine.Engine, tok *tokenizer.Tokenizer, eos []int, opts SchedulerOptions, m *metrics) *Scheduler {
	if opts.Parallel < 1 {
		opts.Parallel = 1
	}
	if opts.QueueSize < 0 {
		opts.QueueSize = 0
	}
	if opts.BatchTokens < 1 {
		opts.BatchTokens = 512
	}
	s := &Scheduler{
		eng: eng, tok: tok, eos: map[int]bool{}, opts: opts,
		queue: make(chan *job, opts.QueueSize), quit: make(chan struct{}), done: make(chan struct{}),
		metrics: m, tracer: newTracer(eng, opts.Probe),
	}
	for _, id := range eos {
		s.eos[id] = true
	}
	for range opts.Parallel {
		seq := eng.NewSequence(opts.CtxSize)
		s.slots = append(s.slots, &slot{seq: seq, next: -1})
	}
	s.opts.CtxSize = s.slots[0].seq.Context()
	go s.run()
	return s
}

// Context is the number of positions each sequence holds.
func (s *Scheduler) Context() int { return s.opts.CtxSize }

// CacheBytes is the memory of every slot's KV cache together.
func (s *Scheduler) CacheBytes() int {
	n := 0
	for _, sl := range s.slots {
		n += sl.seq.CacheBytes()
	}
	return n
}

// Active is the number of sequences being generated.
func (s *Scheduler) Active() int { return int(s.active.Load()) }

// Steps is the number of forward passes run so far.
func (s *Scheduler) Steps() int64 { return s.steps.Load() }

// submit queues j; its events arrive on j.events. It fails at once when the
// queue is full or the scheduler is closed.
func (s *Scheduler) submit(j *job) error {
	if len(j.prompt) == 0 {
		return errors.New("empty prompt")
	}
	if len(j.prompt) >= s.opts.CtxSize {
		return &contextError{prompt: len(j.prompt), ctx: s.opts.CtxSize}
	}
	room := s.opts.CtxSize - len(j.prompt)
	if j.maxTokens <= 0 || j.maxTokens > room {
		j.maxTokens = room
	}
	j.events = make(chan event, j.maxTokens+2)
	j.enqueued = time.Now()
	j.cancelStep.Store(-1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrShuttingDown
	}
	select {
	case s.queue <- j:
		s.metrics.queueDepth.Set(float64(len(s.queue)))
	default:
		return ErrQueueFull
	}
	context.AfterFunc(j.ctx, func() { j.cancelStep.Store(s.steps.Load()) })
	return nil
}

// next waits for the job's next event; false when the request's context
// ended first (the client went away).
func (j *job) next() (event, bool) {
	select {
	case ev := <-j.events:
		return ev, true
	case <-j.ctx.Done():
		return event{}, false
	}
}

// contextError is a prompt that does not fit the context.
type contextError struct{ prompt, ctx int }

func (e *contextError) Error() string {
	return fmt.Sprintf("this model's context is %d tokens, but the prompt has %d tokens; shorten the prompt (the server's limit is --ctx-size %d)", e.ctx, e.prompt, e.ctx)
}

// Close stops accepting requests, lets queued and running ones finish, and
// waits for the scheduler to stop or ctx to end.
func (s *Scheduler) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler shutdown: %w", ctx.Err())
	}
}

// run is the scheduler's loop.
func (s *Scheduler) run() {
	defer close(s.done)
	quit, closing := s.quit, false
	for {
		s.release()
		s.admit()
		if s.active.Load() == 0 {
			// Closing: submit accepts nothing new, so an empty queue with
			// no active sequence means all work is done.
			if closing && len(s.queue) == 0 {
				return
			}
			select {
			case j := <-s.queue:
				s.start(j)
			case <-quit:
				quit, closing = nil, true
			}
			continue
		}
		s.step()
	}
}

// release frees the slots of cancelled requests.
func (s *Scheduler) release() {
	for _, sl := range s.slots {
		if sl.job == nil || sl.job.ctx.Err() == nil {
			continue
		}
		if c := sl.job.cancelStep.Load(); c >= 0 {
			if d := s.steps.Load() - c; d > s.freedAfterCancel.Load() {
				s.freedAfterCancel.Store(d)
			}
		}
		// The cache holds whatever was fed; keep the record exact.
		sl.cached = sl.cached[:sl.seq.Pos()]
		s.finish(sl, event{done: true, err: sl.job.ctx.Err()})
	}
}

// admit moves queued requests into free slots.
func (s *Scheduler) admit() {
	for int(s.active.Load()) < len(s.slots) {
		select {
		case j := <-s.queue:
			s.start(j)
		default:
			return
		}
	}
}

// start gives j the free slot whose cache shares the longest prefix with
// its prompt (the least recently used one on ties), keeping that prefix.
func (s *Scheduler) start(j *job) {
	s.metrics.queueDepth.Set(float64(len(s.queue)))
	if j.ctx.Err() != nil {
		j.events <- event{done: true, err: j.ctx.Err()}
		return
	}
	var best *slot
	bestN := -1
	for _, sl := range s.slots {
		if sl.job != nil {
			continue
		}
		n := commonPrefix(sl.cached, j.prompt)
		if n > bestN || (n == bestN && sl.lastUsed < best.lastUsed) {
			best, bestN = sl, n
		}
	}
	sl := best
	// The last prompt token is always fed, for its logits.
	keep := min(bestN, len(j.prompt)-1)
	sl.seq.Truncate(keep)
	sl.cached = sl.cached[:keep]
	sl.job = j
	sl.reuse = keep
	sl.pending = j.prompt[keep:]
	sl.next = -1
	sl.history = append(sl.history[:0], j.prompt...)
	sl.generated = sl.generated[:0]
	sl.dec = s.tok.NewDecoder()
	sl.stop = engine.NewStopMatcher(j.stop)
	sl.firstTok = time.Time{}
	if j.traceLevel != trace.LevelNone {
		s.tracer.attach(sl.seq, j.traceLevel)
		sl.traced = true
	}
	s.active.Add(1)
	s.metrics.active.Set(float64(s.active.Load()))
	s.metrics.queueWait.Observe(time.Since(j.enqueued).Seconds())
}

func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// step runs one forward pass over every active slot and samples the slots
// whose prompt is done.
func (s *Scheduler) step() {
	var entries []engine.BatchEntry
	var owners []*slot
	budget := s.opts.BatchTokens
	for _, sl := range s.slots {
		if sl.job == nil {
			continue
		}
		var toks []int
		switch {
		case sl.next >= 0:
			toks = []int{sl.next}
		case len(sl.pending) > 0:
			if budget <= 0 {
				continue
			}
			n := min(len(sl.pending), budget)
			budget -= n
			toks = sl.pending[:n]
		default:
			continue
		}
		entries = append(entries, engine.BatchEntry{Seq: sl.seq, Tokens: toks})
		owners = append(owners, sl)
	}
	if len(entries) == 0 {
		return
	}
	out, err := s.eng.ForwardBatch(entries)
	s.steps.Add(1)
	if err != nil {
		for _, sl := range owners {
			sl.cached = sl.cached[:min(len(sl.cached), sl.seq.Pos())]
			s.finish(sl, event{done: true, err: fmt.Errorf("forward pass: %w", err)})
		}
		return
	}
	for i, sl := range owners {
		fed := entries[i].Tokens
		sl.cached = append(sl.cached, fed...)
		if sl.next >= 0 {
			sl.next = -1
		} else {
			sl.pending = sl.pending[len(fed):]
			if len(sl.pending) > 0 {
				continue
			}
		}
		s.sampleNext(sl, out[i])
	}
}

// sampleNext picks the slot's next token from logits and reports it.
func (s *Scheduler) sampleNext(sl *slot, logits []float32) {
	j := sl.job
	if j.filter != nil {
		j.filter.Mask(logits)
	}
	var info *tokenInfo
	if j.logprobs {
		info = &tokenInfo{}
	}
	var raw []float32
	if info != nil {
		raw = slices.Clone(logits)
	}
	sample.ApplyPresenceFrequency(logits, sl.generated, j.presence, j.frequency)
	next := j.sampler.Sample(logits, sl.history)
	if info != nil {
		info.id = next
		info.logprob, info.top = sample.Logprobs(raw, next, j.topLogprobs)
	}
	if sl.firstTok.IsZero() {
		sl.firstTok = time.Now()
		s.metrics.ttft.Observe(sl.firstTok.Sub(j.enqueued).Seconds())
	}
	sl.generated = append(sl.generated, next)
	if s.eos[next] {
		s.finish(sl, event{text: sl.stop.Flush(sl.dec.Flush()), token: info, done: true, finish: "stop"})
		return
	}
	sl.history = append(sl.history, next)
	if j.filter != nil {
		j.filter.Accept(next)
	}
	text, hit := sl.stop.Add(sl.dec.Add(next))
	switch {
	case hit:
		s.finish(sl, event{text: text, token: info, done: true, finish: "stop"})
	case j.filter != nil && j.filter.Done():
		s.finish(sl, event{text: text + sl.stop.Flush(sl.dec.Flush()), token: info, done: true, finish: "stop"})
	case len(sl.generated) >= j.maxTokens || sl.seq.Pos() >= sl.seq.Context():
		s.finish(sl, event{text: text + sl.stop.Flush(sl.dec.Flush()), token: info, done: true, finish: "length"})
	default:
		sl.next = next
		j.events <- event{text: text, token: info}
	}
}

// finish sends the final event and frees the slot.
func (s *Scheduler) finish(sl *slot, ev event) {
	j := sl.job
	ev.usage = usage{prompt: len(j.prompt), cached: sl.reuse, completion: len(sl.generated)}
	if ev.err == nil {
		s.metrics.promptTokens.Add(float64(len(j.prompt)))
		s.metrics.cachedTokens.Add(float64(sl.reuse))
		s.metrics.genTokens.Add(float64(len(sl.generated)))
		if d := time.Since(sl.firstTok); len(sl.generated) > 1 && d > 0 {
			s.metrics.tokensPerSec.Observe(float64(len(sl.generated)-1) / d.Seconds())
		}
	}
	if sl.traced {
		if r := s.tracer.recorder(sl.seq); r != nil {
			ev.trace = r.Lines()
		}
		s.tracer.detach(sl.seq)
		sl.traced = false
	}
	j.events <- ev
	sl.job = nil
	sl.next = -1
	sl.pending = nil
	sl.lastUsed = s.steps.Load()
	s.active.Add(-1)
	s.metrics.active.Set(float64(s.active.Load()))
}
