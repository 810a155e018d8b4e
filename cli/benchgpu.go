package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/sample"
)

// gpuBench is what bench-run --cuda measures beyond the CPU run: the prompt
// in one forward pass, greedy decode at batch 1 (graph replay, the token
// chosen on the device), and Streams sequences decoding together.
type gpuBench struct {
	Streams      int // concurrent sequences (0: none)
	StreamPrompt int // prompt tokens each stream evaluates before decoding
	// Cache is the KV cache type (--cache-type-k; CacheDefault: the
	// model's reference numerics).
	Cache engine.CacheType
}

// streamResult is the many-stream part of bench-run --cuda's result, as
// llama.cpp's llama-batched-bench measures it: every stream's prompt in one
// pass, then NPredict steps of one token per stream in one pass each, with
// every row's logits brought back.
type streamResult struct {
	Streams       int     `json:"streams,omitempty"`
	PromptTokens  int     `json:"stream_prompt_tokens,omitempty"` // all streams together
	PromptSeconds float64 `json:"stream_prompt_s,omitempty"`
	DecodeTokens  int     `json:"stream_decode_tokens,omitempty"` // all streams together
	DecodeSeconds float64 `json:"stream_decode_s,omitempty"`
}

// benchCUDA loads path onto the GPU (backend/cuda, numerics as the CPU
// engine chooses them) and fills r: load time, the prompt ids evaluated in
// one Forward call, predict greedy steps through DecodeArgmax after it (the
// output, and DecodeAfterPromptSeconds) and from position 0 as llama-bench's
// tg test runs (DecodeSeconds), and with
// b.Streams > 0 the many-stream pass. Each timed part runs once untimed
// first, so graph capture and first-use costs stay out of the figures, as
// llama-bench's warm-up run keeps them out of its own.
func benchCUDA(r *benchResult, path string, ids []int, predict, ctxSize int, b gpuBench) error {
	if ok, why := cuda.Available(); !ok {
		return fmt.Errorf("--cuda: %s", why)
	}
	if b.Streams < 0 || b.StreamPrompt < 0 {
		return fmt.Errorf("--streams and --stream-prompt must not be negative")
	}
	path, err := resolveModel(path)
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := format.OpenWith(path, format.Options{Populate: true}) // about to compute
	if err != nil {
		return err
	}
	defer m.Close()
	if err := checkIDs(ids, m.Config.VocabSize); err != nil {
		return err
	}
	ctx := max(ctxSize, len(ids)+predict+1, b.StreamPrompt+predict+1)
	opts := cuda.OptionsFor(m, ctx)
	opts.Numerics = b.Cache.Numerics(opts.Numerics)
	opts.Slots = max(b.Streams, 1)
	g, err := cuda.Load(m, opts)
	if err != nil {
		return err
	}
	defer g.Close()
	r.LoadSeconds = time.Since(t0).Seconds()
	r.Device = g.Device().Name()

	vocab := m.Config.VocabSize
	logits := make([]float32, vocab)
	prompt := make([]cuda.Row, len(ids))
	for i, id := range ids {
		prompt[i] = cuda.Row{Token: id, Pos: i, Logits: i == len(ids)-1}
	}
	var first int
	for warm := 1; warm >= 0; warm-- {
		// Every timed part starts on an idle device: a greedy decode
		// leaves the step after its last token running (cuda.Model.Wait).
		if err := g.Wait(); err != nil {
			return err
		}
		t1 := time.Now()
		if err := g.Forward(prompt, logits); err != nil {
			return fmt.Errorf("prompt: %w", err)
		}
		r.PromptSeconds = time.Since(t1).Seconds()
		first = sample.Argmax(logits)
		// Positions from len(ids) on are overwritten by the timed run, so
		// the warm-up's decode steps leave nothing behind.
		out, secs, err := decodeCUDA(g, first, len(ids), predict, warm == 1)
		if err != nil {
			return err
		}
		r.Output, r.DecodeAfterPromptSeconds = out, secs
		// Decode as llama-bench's tg test: from an empty context (the
		// cache's positions from 0 on are overwritten), after the greedy
		// continuation above has been taken.
		if _, r.DecodeSeconds, err = decodeCUDA(g, ids[0], 0, predict, warm == 1); err != nil {
			return err
		}
	}
	if b.Streams > 0 {
		s, err := benchStreams(g, ids, predict, b)
		if err != nil {
			return err
		}
		r.streamResult = s
	}
	return nil
}

// decodeCUDA runs greedy steps from token at position pos and returns the
// tokens (token first) and the seconds they took; a warm-up runs 2 steps.
func decodeCUDA(g *cuda.Model, token, pos, steps int, warm bool) ([]int, float64, error) {
	if warm {
		steps = min(steps, 2)
	}
	out := make([]int, 0, steps+1)
	out = append(out, token)
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	t := time.Now()
	for i := 0; i < steps; i++ {
		next, err := g.DecodeArgmax(token, pos+i)
		if err != nil {
			return nil, 0, fmt.Errorf("decode step %d: %w", i, err)
		}
		token = next
		out = append(out, token)
	}
	return out, time.Since(t).Seconds(), nil
}

// benchStreams runs b.Streams sequences: their prompts (the first
// b.StreamPrompt ids, cycled when fewer) in one pass, then predict passes
// of one token per stream, each row's logits downloaded. The tokens fed are
// the prompt ids again, as llama-batched-bench feeds random ones: what is
// measured is the passes, not sampling. One untimed round first.
func benchStreams(g *cuda.Model, ids []int, predict int, b gpuBench) (streamResult, error) {
	n, pp := b.Streams, max(b.StreamPrompt, 1)
	vocab := g.Config.VocabSize
	s := streamResult{Streams: n, PromptTokens: n * pp, DecodeTokens: n * predict}
	prompt := make([]cuda.Row, 0, n*pp)
	for slot := 0; slot < n; slot++ {
		for i := 0; i < pp; i++ {
			prompt = append(prompt, cuda.Row{Slot: slot, Token: ids[(slot+i)%len(ids)], Pos: i, Logits: i == pp-1})
		}
	}
	// Page-locked, as llama.cpp's output buffer on a GPU: the logits come
	// back in one DMA transfer.
	logits, err := g.HostFloats(n * vocab)
	if err != nil {
		return s, fmt.Errorf("streams: %w", err)
	}
	step := make([]cuda.Row, n)
	for warm := 1; warm >= 0; warm-- {
		if err := g.Wait(); err != nil {
			return s, err
		}
		t := time.Now()
		if err := g.Forward(prompt, logits); err != nil {
			return s, fmt.Errorf("streams: prompt: %w", err)
		}
		s.PromptSeconds = time.Since(t).Seconds()
		steps := predict
		if warm == 1 {
			steps = min(steps, 2)
		}
		t = time.Now()
		for i := 0; i < steps; i++ {
			for slot := range step {
				step[slot] = cuda.Row{Slot: slot, Token: ids[(slot+pp+i)%len(ids)], Pos: pp + i, Logits: true}
			}
			if err := g.Forward(step, logits); err != nil {
				return s, fmt.Errorf("streams: step %d: %w", i, err)
			}
		}
		s.DecodeSeconds = time.Since(t).Seconds()
	}
	if s.PromptSeconds <= 0 || s.DecodeSeconds <= 0 {
		return s, errors.New("streams: no time measured")
	}
	return s, nil
}
