// Package profile measures where a model's time goes: it runs warm-up and
// measured generations with the engine's probe installed and reports each
// brick's time (from timers around the real kernel calls) beside the
// measured wall time of the whole generation, with what no brick accounts
// for shown as the unattributed remainder.
package profile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/sample"
)

// Order is the bricks in the order a token meets them.
var Order = []engine.Brick{
	engine.BrickEmbed, engine.BrickNorm, engine.BrickQKV, engine.BrickRope, engine.BrickScore,
	engine.BrickAttnOut, engine.BrickResidual, engine.BrickMLPGateUp, engine.BrickMLPDown,
	engine.BrickLMHead, engine.BrickSampling,
}

// Options configure a profile run.
type Options struct {
	Tokens int // generated tokens measured (default 32)
	Warmup int // generated tokens of the warm-up run (default 4; < 0 for none)
	// Delay slows bricks by the given time inside their timing window, as a
	// slower kernel would: for testing that the profiler attributes time
	// to the right brick.
	Delay map[engine.Brick]time.Duration
}

// Brick is one brick's measured time.
type Brick struct {
	Name  engine.Brick  `json:"brick"`
	Calls int           `json:"calls"`
	Total time.Duration `json:"total_ns"`
	Share float64       `json:"share"` // of the measured total
}

// Result is a profile: per-brick times, their sum and the measured total.
type Result struct {
	Threads      int           `json:"threads"`
	Device       string        `json:"device"` // engine.Engine.Device: "cpu" or "cuda (GPU name)"
	PromptTokens int           `json:"prompt_tokens"`
	Tokens       int           `json:"generated_tokens"`
	Bricks       []Brick       `json:"bricks"`
	BrickSum     time.Duration `json:"brick_sum_ns"`
	Measured     time.Duration `json:"measured_total_ns"`
	Unattributed time.Duration `json:"unattributed_ns"`
	Prefill      time.Duration `json:"prefill_ns"`
	Decode       time.Duration `json:"decode_ns"`
	PrefillRate  float64       `json:"prefill_tokens_per_s"`
	DecodeRate   float64       `json:"decode_tokens_per_s"`
}

// Share returns brick b's share of the measured total (0 when absent).
func (r *Result) Share(b engine.Brick) float64 {
	for _, x := range r.Bricks {
		if x.Name == b {
			return x.Share
		}
	}
	return 0
}

// collector sums brick times.
type collector struct {
	calls map[engine.Brick]int
	total map[engine.Brick]time.Duration
}

func (c *collector) Brick(ev engine.BrickEvent) {
	c.calls[ev.Brick]++
	c.total[ev.Brick] += ev.Elapsed
}

// delayed is a collector that also slows bricks inside their timing window.
type delayed struct {
	*collector
	delay map[engine.Brick]time.Duration
}

// BrickDelay waits (busy, like a kernel) for b's delay.
func (d delayed) BrickDelay(b engine.Brick) {
	if w := d.delay[b]; w > 0 {
		for end := time.Now().Add(w); time.Now().Before(end); {
		}
	}
}

// nopDecoder skips detokenization: the profile times the engine.
type nopDecoder struct{}

func (nopDecoder) Add(int) string { return "" }
func (nopDecoder) Flush() string  { return "" }

// Run profiles eng on prompt: a warm-up generation, then a measured one of
// opts.Tokens greedy tokens (EOS does not stop it) with every brick timed.
func Run(ctx context.Context, eng *engine.Engine, prompt []int, opts Options) (*Result, error) {
	if len(prompt) == 0 {
		return nil, errors.New("profile: empty prompt")
	}
	if opts.Tokens <= 0 {
		opts.Tokens = 32
	}
	if opts.Warmup == 0 {
		opts.Warmup = 4
	}
	gen := func(n int) (*engine.Stats, time.Duration, error) {
		seq := eng.NewSequence(len(prompt) + n + 1)
		t0 := time.Now()
		st, err := seq.Generate(ctx, prompt, engine.GenerateOptions{
			MaxTokens: n,
			Sampler:   sample.New(sample.Params{Temperature: 0}),
			Decoder:   nopDecoder{},
		}, func(string) error { return nil })
		return st, time.Since(t0), err
	}
	if opts.Warmup > 0 {
		if _, _, err := gen(opts.Warmup); err != nil {
			return nil, fmt.Errorf("profile: warm-up: %w", err)
		}
	}
	c := &collector{calls: map[engine.Brick]int{}, total: map[engine.Brick]time.Duration{}}
	var p engine.Probe = c
	if len(opts.Delay) > 0 {
		p = delayed{c, opts.Delay}
	}
	eng.SetProbe(p)
	st, wall, err := gen(opts.Tokens)
	eng.SetProbe(nil)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	r := &Result{
		Threads: eng.Threads(), Device: eng.Device(), PromptTokens: len(prompt), Tokens: st.Tokens, Measured: wall,
		Prefill: st.Prefill, Decode: st.Decode, PrefillRate: st.PrefillRate(), DecodeRate: st.DecodeRate(),
	}
	for _, b := range Order {
		if c.calls[b] == 0 {
			continue
		}
		r.Bricks = append(r.Bricks, Brick{Name: b, Calls: c.calls[b], Total: c.total[b], Share: c.total[b].Seconds() / wall.Seconds()})
		r.BrickSum += c.total[b]
	}
	for b, n := range c.calls { // bricks the engine added after this list
		if !known(b) {
			r.Bricks = append(r.Bricks, Brick{Name: b, Calls: n, Total: c.total[b], Share: c.total[b].Seconds() / wall.Seconds()})
			r.BrickSum += c.total[b]
		}
	}
	r.Unattributed = wall - r.BrickSum
	return r, nil
}

func known(b engine.Brick) bool {
	for _, x := range Order {
		if x == b {
			return true
		}
	}
	return false
}

// WriteTable prints the profile as an aligned table.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "BRICK\tCALLS\tTOTAL ms\tSHARE\tPER TOKEN µs\t\n")
	tokens := r.PromptTokens + r.Tokens
	for _, b := range r.Bricks {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.1f%%\t%.1f\t\n", b.Name, b.Calls, ms(b.Total), 100*b.Share,
			float64(b.Total.Microseconds())/float64(max(tokens, 1)))
	}
	fmt.Fprintf(tw, "bricks sum\t\t%.3f\t%.1f%%\t\t\n", ms(r.BrickSum), 100*r.BrickSum.Seconds()/r.Measured.Seconds())
	fmt.Fprintf(tw, "unattributed\t\t%.3f\t%.1f%%\t\t\n", ms(r.Unattributed), 100*r.Unattributed.Seconds()/r.Measured.Seconds())
	fmt.Fprintf(tw, "measured total\t\t%.3f\t100.0%%\t\t\n", ms(r.Measured))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nprefill: %d tokens in %.1f ms (%.1f tok/s); decode: %d tokens in %.1f ms (%.1f tok/s); %d threads; device %s\n",
		r.PromptTokens, ms(r.Prefill), r.PrefillRate, r.Tokens, ms(r.Decode), r.DecodeRate, r.Threads, r.Device)
	return err
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
