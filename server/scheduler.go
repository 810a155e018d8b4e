package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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
	// logits is the buffer the slot's last pass wrote its logits to, handed
	// back to the next pass so that decoding allocates none.
	logits []float32
	// draw asks a GPU pass to draw the slot's next token (engine.Draw).
	draw engine.Draw
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
	// KVBudget is the memory, in bytes, that the KV caches of all
	// sequences may take together. With a budget a slot's cache is
	// allocated when a request needs it, sized to the request (its prompt
	// and max tokens, rounded up to kvGrain positions), and a request waits
	// in the queue until its cache fits beside the running ones (idle
	// slots' caches are dropped, least recently used first, to make room);
	// CtxSize is cut to what the budget holds. 0: no budget, every slot's
	// cache of CtxSize positions is allocated at start.
	KVBudget int64
}

// kvGrain rounds the KV cache sizes a budgeted scheduler allocates, so
// that a slot's cache serves later requests of similar size.
const kvGrain = 64

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
	// posBytes is one position's KV cache bytes (all layers).
	posBytes int64
	// waiting is the head of the queue, taken out by admit but not yet
	// started because its KV cache does not fit the budget; only the run
	// goroutine touches it. nWaiting (0 or 1) counts it against QueueSize.
	waiting  *job
	nWaiting atomic.Int64
	// peakKV records, for tests, the most KV cache bytes allocated at once
	// and peakActive the most sequences running at once.
	peakKV, peakActive atomic.Int64

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
	s.posBytes = int64(eng.NewSequence(1).CacheBytes())
	if opts.KVBudget > 0 {
		ctx := opts.CtxSize
		if maxPos := eng.Config.MaxPositions; ctx < 1 || (maxPos > 0 && ctx > maxPos) {
			ctx = maxPos
		}
		s.opts.CtxSize = max(1, min(ctx, int(opts.KVBudget/s.posBytes)))
		for range opts.Parallel {
			s.slots = append(s.slots, &slot{next: -1})
		}
	} else {
		for range opts.Parallel {
			seq := eng.NewSequence(opts.CtxSize)
			s.slots = append(s.slots, &slot{seq: seq, next: -1})
		}
		s.opts.CtxSize = s.slots[0].seq.Context()
	}
	s.peakKV.Store(int64(s.CacheBytes()))
	go s.run()
	return s
}

// KVBudget is the KV cache budget in bytes (0: none).
func (s *Scheduler) KVBudget() int64 { return s.opts.KVBudget }

// PositionBytes is the KV cache memory of one token position of one
// sequence.
func (s *Scheduler) PositionBytes() int64 { return s.posBytes }

// Context is the number of positions each sequence holds.
func (s *Scheduler) Context() int { return s.opts.CtxSize }

// CacheBytes is the memory of every slot's KV cache together.
func (s *Scheduler) CacheBytes() int {
	n := 0
	for _, sl := range s.slots {
		if sl.seq != nil {
			n += sl.seq.CacheBytes()
		}
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
	if s.opts.QueueSize > 0 && len(s.queue)+int(s.nWaiting.Load()) >= s.opts.QueueSize {
		return ErrQueueFull
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
			if closing && len(s.queue) == 0 && s.waiting == nil {
				return
			}
			if j := s.waiting; j != nil {
				// Nothing runs and every idle cache may be dropped, so
				// only a request larger than the whole budget waits here.
				s.setWaiting(nil)
				s.finishUnstarted(j, fmt.Errorf("the request's KV cache does not fit the server's budget of %d bytes", s.opts.KVBudget))
				continue
			}
			select {
			case j := <-s.queue:
				if !s.start(j) {
					s.setWaiting(j)
				}
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

// admit moves queued requests into free slots, in order, while their KV
// caches fit the budget.
func (s *Scheduler) admit() {
	for int(s.active.Load()) < len(s.slots) {
		j := s.waiting
		if j == nil {
			select {
			case j = <-s.queue:
			default:
				return
			}
		}
		s.setWaiting(nil)
		if !s.start(j) {
			s.setWaiting(j)
			return
		}
	}
}

// setWaiting makes j the queue's head that waits for KV memory (nil: none).
func (s *Scheduler) setWaiting(j *job) {
	s.waiting = j
	if j == nil {
		s.nWaiting.Store(0)
	} else {
		s.nWaiting.Store(1)
	}
}

// finishUnstarted ends a request that never got a slot.
func (s *Scheduler) finishUnstarted(j *job, err error) {
	s.metrics.queueDepth.Set(float64(len(s.queue)))
	j.events <- event{done: true, err: err}
}

// positions is the KV cache size a budgeted scheduler gives j: its prompt
// and most tokens, rounded up to kvGrain, at most the context.
func (s *Scheduler) positions(j *job) int {
	n := len(j.prompt) + j.maxTokens
	return min(s.opts.CtxSize, (n+kvGrain-1)/kvGrain*kvGrain)
}

// budgetSlot finds j a free slot under the KV budget: the free slot with a
// large enough cache sharing the longest prefix with j's prompt (least
// recently used on ties), else a free slot given a new cache of j's size,
// dropping idle caches (least recently used first) to make room. It
// returns nil when j's cache does not fit beside the running sequences.
func (s *Scheduler) budgetSlot(j *job) (*slot, int) {
	need := s.positions(j)
	var best *slot
	bestN := -1
	var free []*slot
	for _, sl := range s.slots {
		if sl.job != nil {
			continue
		}
		free = append(free, sl)
		if sl.seq == nil || sl.seq.Context() < need {
			continue
		}
		n := commonPrefix(sl.cached, j.prompt)
		if n > bestN || (n == bestN && sl.lastUsed < best.lastUsed) {
			best, bestN = sl, n
		}
	}
	if best != nil {
		return best, bestN
	}
	// Free slots without a cache first, then the least recently used.
	slices.SortStableFunc(free, func(a, b *slot) int {
		switch {
		case (a.seq == nil) != (b.seq == nil):
			if a.seq == nil {
				return -1
			}
			return 1
		case a.lastUsed < b.lastUsed:
			return -1
		case a.lastUsed > b.lastUsed:
			return 1
		}
		return 0
	})
	used, freeable := int64(s.CacheBytes()), int64(0)
	for _, sl := range free {
		if sl.seq != nil {
			freeable += int64(sl.seq.CacheBytes())
		}
	}
	want := int64(need) * s.posBytes
	if len(free) == 0 || used-freeable+want > s.opts.KVBudget {
		return nil, 0
	}
	for _, sl := range free {
		if used+want <= s.opts.KVBudget && sl != free[0] {
			break
		}
		if sl.seq != nil {
			used -= int64(sl.seq.CacheBytes())
			sl.seq, sl.cached = nil, nil
		}
	}
	sl := free[0]
	sl.seq, sl.cached = s.eng.NewSequence(need), nil
	if kv := int64(s.CacheBytes()); kv > s.peakKV.Load() {
		s.peakKV.Store(kv)
	}
	return sl, 0
}

// start gives j the free slot whose cache shares the longest prefix with
// its prompt (the least recently used one on ties), keeping that prefix.
// Under a KV budget it reports false, starting nothing, when j's cache does
// not fit yet.
func (s *Scheduler) start(j *job) bool {
	s.metrics.queueDepth.Set(float64(len(s.queue)))
	if j.ctx.Err() != nil {
		j.events <- event{done: true, err: j.ctx.Err()}
		return true
	}
	var best *slot
	bestN := -1
	if s.opts.KVBudget > 0 {
		if best, bestN = s.budgetSlot(j); best == nil {
			return false
		}
	} else {
		for _, sl := range s.slots {
			if sl.job != nil {
				continue
			}
			n := commonPrefix(sl.cached, j.prompt)
			if n > bestN || (n == bestN && sl.lastUsed < best.lastUsed) {
				best, bestN = sl, n
			}
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
	if a := s.active.Load(); a > s.peakActive.Load() {
		s.peakActive.Store(a)
	}
	s.metrics.active.Set(float64(s.active.Load()))
	s.metrics.queueWait.Observe(time.Since(j.enqueued).Seconds())
	return true
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
		entries = append(entries, engine.BatchEntry{Seq: sl.seq, Tokens: toks, Logits: sl.logits, Draw: sl.plan(len(toks))})
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
	var ready []*slot
	for i, sl := range owners {
		sl.logits = out[i]
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
		ready = append(ready, sl)
	}
	drawn := make([]drawnToken, len(ready))
	parallel(len(ready), func(i int) {
		if d := &ready[i].draw; d.Drawn {
			drawn[i] = drawnToken{id: d.Token}
		} else {
			drawn[i] = draw(ready[i])
		}
	})
	for i, sl := range ready {
		s.report(sl, drawn[i].id, drawn[i].info)
	}
}

// drawnToken is a slot's next token and, if asked for, its logprobs.
type drawnToken struct {
	id   int
	info *tokenInfo
}

// parallel runs f(0) .. f(n-1) on up to GOMAXPROCS goroutines: sampling a
// full vocabulary costs a few milliseconds a sequence on the host, as much
// as a pass of many sequences on a GPU.
func parallel(n int, f func(int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// plan returns the Draw that lets a GPU pass feeding n tokens draw the
// slot's next token, or nil: when the pass does not end the prompt, or the
// job needs the full logits (a token filter, logprobs).
func (sl *slot) plan(n int) *engine.Draw {
	j := sl.job
	sl.draw.Drawn = false
	if (sl.next < 0 && n < len(sl.pending)) || j.filter != nil || j.logprobs {
		return nil
	}
	sl.draw = engine.Draw{Sampler: j.sampler, History: sl.history, Generated: sl.generated,
		Presence: j.presence, Frequency: j.frequency, Last: len(sl.generated)+1 >= j.maxTokens}
	return &sl.draw
}

// draw picks the slot's next token from its logits. It touches only the
// slot and its job, so slots draw concurrently.
func draw(sl *slot) drawnToken {
	j, logits := sl.job, sl.logits
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
	return drawnToken{id: next, info: info}
}

// report records the slot's drawn token and sends it to the client.
func (s *Scheduler) report(sl *slot, next int, info *tokenInfo) {
	j := sl.job
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
