package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apr-llm/apr/sample"
)

// Detokenizer turns ids into text incrementally, holding back incomplete
// UTF-8 sequences (tokenizer.StreamDecoder implements it).
type Detokenizer interface {
	Add(id int) string
	Flush() string
}

// GenerateOptions control one generation.
type GenerateOptions struct {
	MaxTokens int // <= 0: until EOS or the context is full
	Sampler   *sample.Sampler
	EOS       []int    // ids that end generation (not emitted)
	Stop      []string // strings that end generation (not emitted)
	Decoder   Detokenizer
}

// Stats describe a finished generation, from timers that ran.
type Stats struct {
	PromptTokens int
	Tokens       int // generated, EOS included
	Prefill      time.Duration
	Decode       time.Duration
	StopReason   string // "eos", "stop", "length", "context"
	Output       []int
}

// PrefillRate is prompt tokens per second.
func (s *Stats) PrefillRate() float64 { return rate(s.PromptTokens, s.Prefill) }

// DecodeRate is generated tokens per second after the first.
func (s *Stats) DecodeRate() float64 { return rate(s.Tokens-1, s.Decode) }

func rate(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Generate feeds prompt (appended to what the sequence holds), then samples
// until EOS, a stop string, MaxTokens or the end of the context, calling emit
// with each new piece of text. Cancelling ctx stops it with ctx's error.
func (s *Sequence) Generate(ctx context.Context, prompt []int, opts GenerateOptions, emit func(string) error) (*Stats, error) {
	st := &Stats{PromptTokens: len(prompt)}
	if len(prompt) == 0 {
		return st, fmt.Errorf("generate: empty prompt")
	}
	if s.pos+len(prompt) > s.ctx {
		return st, fmt.Errorf("%w: the prompt has %d tokens, the context holds %d (%d in use)", ErrContextFull, len(prompt), s.ctx, s.pos)
	}
	history := append([]int(nil), prompt...)
	// On the GPU the pass draws the token itself where the sampler allows
	// (Draw): only its candidates come back.
	// lastDraw says whether the token drawn after feeding n more tokens is
	// the last that the length limit or the context lets the sequence take
	// (Draw.Last: the device then sends no greedy step after it).
	lastDraw := func(n int) bool {
		return opts.MaxTokens > 0 && len(st.Output)+1 >= opts.MaxTokens || s.pos+n >= s.ctx
	}
	draw := &Draw{Sampler: opts.Sampler, History: history, Last: lastDraw(len(prompt))}
	t0 := time.Now()
	logits, err := s.forwardEntry(BatchEntry{Seq: s, Tokens: prompt, Draw: draw})
	if err != nil {
		return st, err
	}
	st.Prefill = time.Since(t0)
	stop := newStopper(opts.Stop)
	isEOS := map[int]bool{}
	for _, id := range opts.EOS {
		isEOS[id] = true
	}
	t1 := time.Now()
	defer func() { st.Decode = time.Since(t1) }()
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		next := draw.Token
		if !draw.Drawn {
			ts := s.e.mark()
			next = opts.Sampler.Sample(logits, history)
			s.e.report(BrickSampling, -1, ts, 1, logits)
		}
		st.Tokens++
		if isEOS[next] {
			st.StopReason = "eos"
			return st, emitIf(emit, stop.flush(opts.Decoder.Flush()))
		}
		st.Output = append(st.Output, next)
		history = append(history, next)
		text, hit := stop.add(opts.Decoder.Add(next))
		if err := emitIf(emit, text); err != nil {
			return st, err
		}
		if hit {
			st.StopReason = "stop"
			return st, nil
		}
		if opts.MaxTokens > 0 && len(st.Output) >= opts.MaxTokens {
			st.StopReason = "length"
			return st, emitIf(emit, stop.flush(opts.Decoder.Flush()))
		}
		if s.pos >= s.ctx {
			st.StopReason = "context"
			return st, emitIf(emit, stop.flush(opts.Decoder.Flush()))
		}
		// The step writes into the previous logits: no allocation per token.
		draw.History = history
		draw.Last = lastDraw(1)
		if logits, err = s.forwardEntry(BatchEntry{Seq: s, Tokens: []int{next}, Logits: logits, Draw: draw}); err != nil {
			return st, err
		}
	}
}

func emitIf(emit func(string) error, s string) error {
	if s == "" {
		return nil
	}
	return emit(s)
}

// stopper watches streamed text for stop strings, holding back any tail that
// could be the start of one.
type stopper struct {
	stops   []string
	pending string
	done    bool
}

func newStopper(stops []string) *stopper {
	var s []string
	for _, x := range stops {
		if x != "" {
			s = append(s, x)
		}
	}
	return &stopper{stops: s}
}

// add takes new text and returns what can be emitted, and whether a stop
// string was found (the text before it is emitted, the rest dropped).
func (s *stopper) add(text string) (string, bool) {
	if s.done {
		return "", true
	}
	s.pending += text
	if len(s.stops) == 0 {
		out := s.pending
		s.pending = ""
		return out, false
	}
	first := -1
	for _, st := range s.stops {
		if i := strings.Index(s.pending, st); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		s.done = true
		out := s.pending[:first]
		s.pending = ""
		return out, true
	}
	hold := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > hold; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				hold = k
				break
			}
		}
	}
	out := s.pending[:len(s.pending)-hold]
	s.pending = s.pending[len(s.pending)-hold:]
	return out, false
}

// flush returns the held-back text once generation ends for another reason.
func (s *stopper) flush(tail string) string {
	if s.done {
		return ""
	}
	out, _ := s.add(tail)
	out += s.pending
	s.pending = ""
	return out
}
