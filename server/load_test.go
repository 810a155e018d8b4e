package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.uber.org/goleak"
)

// loadPrompts are the reference prompts the load clients cycle through:
// chat and raw, short and long, so that prompts of different lengths are
// prefilled in the same batch as other sequences' decode steps.
var loadPrompts = []string{"two_plus_two", "python_sum", "multi_turn", "go_hello", "tool_result", "raw_python", "raw_go", "raw_fim", "raw_unicode"}

// loadResult is what a load run measured.
type loadResult struct {
	requests, tokens int
	elapsed          time.Duration
	errs             []error
}

// runLoad has clients concurrent streaming clients send perClient requests
// each (greedy, at most maxTokens tokens) and checks every answer against
// the greedy reference of its prompt.
func runLoad(t testing.TB, ts *testServer, clients, perClient, maxTokens int) loadResult {
	t.Helper()
	client := ts.openai()
	r := refs(t)
	type want struct {
		text string
		n    int
	}
	wants := map[string]want{}
	type chatReq struct {
		params openai.ChatCompletionNewParams
		opts   []option.RequestOption
	}
	chats := map[string]chatReq{}
	for _, name := range loadPrompts {
		text, _, n := expected(t, r[name], maxTokens)
		wants[name] = want{text, n}
		if r[name].Kind == "chat" {
			params, opts := chatParams(t, r[name])
			params.MaxTokens = openai.Int(int64(maxTokens))
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			chats[name] = chatReq{params, opts}
		}
	}
	var (
		mu     sync.Mutex
		res    loadResult
		tokens atomic.Int64
		wg     sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		res.errs = append(res.errs, err)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				name := loadPrompts[(c*7+i)%len(loadPrompts)]
				p := r[name]
				var text string
				var usage openai.CompletionUsage
				if p.Kind == "chat" {
					cr := chats[name]
					s := client.Chat.Completions.NewStreaming(ctx, cr.params, cr.opts...)
					for s.Next() {
						ch := s.Current()
						if len(ch.Choices) > 0 {
							text += ch.Choices[0].Delta.Content
						}
						if ch.Usage.TotalTokens > 0 {
							usage = ch.Usage
						}
					}
					if err := s.Err(); err != nil {
						fail(fmt.Errorf("client %d request %d (%s): %w", c, i, name, err))
						continue
					}
				} else {
					params := openai.CompletionNewParams{
						Model:         "tiny",
						Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String(p.Text)},
						Temperature:   openai.Float(0),
						MaxTokens:     openai.Int(int64(maxTokens)),
						StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
					}
					s := client.Completions.NewStreaming(ctx, params)
					for s.Next() {
						ch := s.Current()
						if len(ch.Choices) > 0 {
							text += ch.Choices[0].Text
						}
						if ch.Usage.TotalTokens > 0 {
							usage = ch.Usage
						}
					}
					if err := s.Err(); err != nil {
						fail(fmt.Errorf("client %d request %d (%s): %w", c, i, name, err))
						continue
					}
				}
				w := wants[name]
				if text != w.text || usage.CompletionTokens != int64(w.n) {
					fail(fmt.Errorf("client %d request %d (%s): %q in %d tokens, reference %q in %d", c, i, name, text, usage.CompletionTokens, w.text, w.n))
					continue
				}
				tokens.Add(usage.CompletionTokens)
				mu.Lock()
				res.requests++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	res.tokens = int(tokens.Load())
	return res
}

// TestLoadContinuousBatching runs 32 concurrent streaming clients x 20
// requests against a server decoding 32 sequences together: every answer
// must equal its greedy reference (batching must not change results), with
// no error and no goroutine left behind.
func TestLoadContinuousBatching(t *testing.T) {
	tiny(t)
	leaks := goleak.IgnoreCurrent()
	// Cleanups run last-in first-out: this one runs after the server's.
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	ts := start(t, Config{Parallel: 32, QueueSize: 64, CtxSize: 512})
	const clients, perClient, maxTokens = 32, 20, 4
	res := runLoad(t, ts, clients, perClient, maxTokens)
	for i, err := range res.errs {
		if i == 5 {
			t.Errorf("... and %d more", len(res.errs)-5)
			break
		}
		t.Error(err)
	}
	if res.requests != clients*perClient {
		t.Fatalf("%d of %d requests answered correctly", res.requests, clients*perClient)
	}
	t.Logf("%d requests, %d tokens in %v: %.1f tokens/s, %d forward passes",
		res.requests, res.tokens, res.elapsed.Round(time.Millisecond), float64(res.tokens)/res.elapsed.Seconds(), ts.sched.Steps())
}

// BenchmarkServeClients measures aggregate generated tokens/s with 1, 8
// and 32 concurrent streaming clients (at most 32 tokens per request, at
// least 32 requests in all).
func BenchmarkServeClients(b *testing.B) {
	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ts := start(b, Config{Parallel: clients, QueueSize: 64, CtxSize: 1024})
			var tokens int
			var elapsed time.Duration
			for b.Loop() {
				res := runLoad(b, ts, clients, max(2, 32/clients), 32)
				if len(res.errs) > 0 {
					b.Fatal(res.errs[0])
				}
				tokens += res.tokens
				elapsed += res.elapsed
			}
			b.ReportMetric(float64(tokens)/elapsed.Seconds(), "tokens/s")
		})
	}
}
