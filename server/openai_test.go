package server

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// chatPrompts are the reference prompts answered through the chat API.
var chatPrompts = []string{"two_plus_two", "python_sum", "multi_turn", "tools", "tool_result", "go_hello"}

// TestChatMatchesGreedyReference sends every reference chat prompt through
// the official client at temperature 0 and compares the answer, the finish
// reason and the usage with transformers' greedy decoding.
func TestChatMatchesGreedyReference(t *testing.T) {
	ts := start(t, Config{Parallel: 2})
	client := ts.openai()
	r := refs(t)
	for _, name := range chatPrompts {
		t.Run(name, func(t *testing.T) {
			p := r[name]
			params, opts := chatParams(t, p)
			res, err := client.Chat.Completions.New(context.Background(), params, opts...)
			if err != nil {
				t.Fatal(err)
			}
			want, stopped, n := expected(t, p, 0)
			if !stopped {
				t.Fatalf("reference for %s has no EOS within 32 tokens", name)
			}
			if res.Usage.PromptTokens != int64(len(p.TokenIDs)) {
				t.Errorf("prompt_tokens = %d, reference prompt has %d", res.Usage.PromptTokens, len(p.TokenIDs))
			}
			if res.Usage.CompletionTokens != int64(n) || res.Usage.TotalTokens != int64(n+len(p.TokenIDs)) {
				t.Errorf("usage = %+v, want %d completion tokens", res.Usage, n)
			}
			c := res.Choices[0]
			if len(p.Tools) > 0 && strings.HasPrefix(want, "<tool_call>") {
				if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 {
					t.Fatalf("finish %q, %d tool calls; want one call: %q", c.FinishReason, len(c.Message.ToolCalls), want)
				}
				fn := c.Message.ToolCalls[0].Function
				body := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(want, "<tool_call>"), "</tool_call>"))
				var call struct {
					Name      string          `json:"name"`
					Arguments json.RawMessage `json:"arguments"`
				}
				if err := json.Unmarshal([]byte(body), &call); err != nil {
					t.Fatal(err)
				}
				if fn.Name != call.Name || fn.Arguments != string(call.Arguments) {
					t.Fatalf("tool call %s(%s), reference %s(%s)", fn.Name, fn.Arguments, call.Name, call.Arguments)
				}
				return
			}
			if c.Message.Content != want || c.FinishReason != "stop" {
				t.Fatalf("answer %q (finish %q), reference %q (stop)", c.Message.Content, c.FinishReason, want)
			}
		})
	}
}

// TestChatStreamMatchesGreedyReference streams the chat prompts, with
// usage in the last chunk, and accumulates them with the client's
// accumulator.
func TestChatStreamMatchesGreedyReference(t *testing.T) {
	ts := start(t, Config{Parallel: 3})
	client := ts.openai()
	r := refs(t)
	for _, name := range chatPrompts {
		t.Run(name, func(t *testing.T) {
			p := r[name]
			params, opts := chatParams(t, p)
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := client.Chat.Completions.NewStreaming(context.Background(), params, opts...)
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			want, _, n := expected(t, p, 0)
			if acc.Usage.CompletionTokens != int64(n) || acc.Usage.PromptTokens != int64(len(p.TokenIDs)) {
				t.Errorf("usage = %+v, want %d prompt and %d completion tokens", acc.Usage, len(p.TokenIDs), n)
			}
			c := acc.Choices[0]
			if strings.HasPrefix(want, "<tool_call>") {
				if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 || c.Message.ToolCalls[0].Function.Name != "get_weather" {
					t.Fatalf("finish %q, tool calls %+v; want get_weather", c.FinishReason, c.Message.ToolCalls)
				}
				return
			}
			if c.Message.Content != want || c.FinishReason != "stop" {
				t.Fatalf("streamed %q (finish %q) in %d chunks, reference %q", c.Message.Content, c.FinishReason, chunks, want)
			}
		})
	}
}

// TestCompletions checks /v1/completions: fill-in-the-middle with suffix,
// raw prompts cut by max_tokens, streamed and not.
func TestCompletions(t *testing.T) {
	ts := start(t, Config{Parallel: 2})
	client := ts.openai()
	r := refs(t)
	cases := []struct {
		name, ref      string
		prompt, suffix string
		max            int
		stream         bool
	}{
		{name: "fim", ref: "raw_fim", prompt: "def add(a, b):\n    ", suffix: "\n    return c\n"},
		{name: "fim stream", ref: "raw_fim", prompt: "def add(a, b):\n    ", suffix: "\n    return c\n", stream: true},
		{name: "raw python", ref: "raw_python", max: 12},
		{name: "raw go stream", ref: "raw_go", max: 20, stream: true},
		{name: "raw unicode", ref: "raw_unicode", max: 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := r[c.ref]
			prompt := c.prompt
			if prompt == "" {
				prompt = p.Text
			}
			params := openai.CompletionNewParams{
				Model:       "tiny",
				Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
				Temperature: openai.Float(0),
			}
			if c.suffix != "" {
				params.Suffix = openai.String(c.suffix)
			}
			if c.max > 0 {
				params.MaxTokens = openai.Int(int64(c.max))
			}
			want, stopped, n := expected(t, p, c.max)
			wantFinish := "length"
			if stopped {
				wantFinish = "stop"
			}
			var text, finish string
			var usage openai.CompletionUsage
			if c.stream {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				s := client.Completions.NewStreaming(context.Background(), params)
				for s.Next() {
					ch := s.Current()
					if len(ch.Choices) > 0 {
						text += ch.Choices[0].Text
						if ch.Choices[0].FinishReason != "" {
							finish = string(ch.Choices[0].FinishReason)
						}
					}
					if ch.Usage.TotalTokens > 0 {
						usage = ch.Usage
					}
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
			} else {
				res, err := client.Completions.New(context.Background(), params)
				if err != nil {
					t.Fatal(err)
				}
				text, finish, usage = res.Choices[0].Text, string(res.Choices[0].FinishReason), res.Usage
			}
			if text != want || finish != wantFinish {
				t.Fatalf("completion %q (finish %q), reference %q (%s)", text, finish, want, wantFinish)
			}
			if usage.PromptTokens != int64(len(p.TokenIDs)) || usage.CompletionTokens != int64(n) {
				t.Fatalf("usage %d prompt / %d completion tokens, want %d / %d", usage.PromptTokens, usage.CompletionTokens, len(p.TokenIDs), n)
			}
		})
	}
}

// TestStopSequences checks that generation ends at a stop string, which is
// never returned, not even in part, streamed or not.
func TestStopSequences(t *testing.T) {
	ts := start(t, Config{Parallel: 2})
	client := ts.openai()
	p := refs(t)["go_hello"]
	full, _, _ := expected(t, p, 0)
	cases := []struct {
		name string
		stop []string
	}{
		{"newline", []string{"\n"}},
		{"word", []string{"Println"}},
		{"two, earliest wins", []string{"world", "import"}},
		{"never seen", []string{"zzz-not-there"}},
	}
	for _, c := range cases {
		want, finish := full, "stop"
		cut := len(full)
		for _, s := range c.stop {
			if i := strings.Index(full, s); i >= 0 && i < cut {
				cut = i
			}
		}
		want = full[:cut]
		for _, stream := range []bool{false, true} {
			name := c.name
			if stream {
				name += " stream"
			}
			t.Run(name, func(t *testing.T) {
				params, opts := chatParams(t, p)
				params.Stop = openai.ChatCompletionNewParamsStopUnion{OfStringArray: c.stop}
				var got, gotFinish string
				if stream {
					s := client.Chat.Completions.NewStreaming(context.Background(), params, opts...)
					for s.Next() {
						ch := s.Current()
						if len(ch.Choices) > 0 {
							got += ch.Choices[0].Delta.Content
							if ch.Choices[0].FinishReason != "" {
								gotFinish = ch.Choices[0].FinishReason
							}
						}
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
				} else {
					res, err := client.Chat.Completions.New(context.Background(), params, opts...)
					if err != nil {
						t.Fatal(err)
					}
					got, gotFinish = res.Choices[0].Message.Content, res.Choices[0].FinishReason
				}
				if got != want || gotFinish != finish {
					t.Fatalf("stop %q: %q (finish %q), want %q (%s)", c.stop, got, gotFinish, want, finish)
				}
			})
		}
	}
}

// TestLogprobs checks logprobs and top_logprobs against the reference's
// two best logits at each greedy step: the top tokens are the reference's,
// and the gap between their log-probabilities is the gap between their
// logits.
func TestLogprobs(t *testing.T) {
	ts := start(t, Config{Parallel: 1})
	client := ts.openai()
	m, _ := tiny(t)
	for _, name := range []string{"two_plus_two", "python_sum"} {
		t.Run(name, func(t *testing.T) {
			p := refs(t)[name]
			params, opts := chatParams(t, p)
			params.Logprobs = openai.Bool(true)
			params.TopLogprobs = openai.Int(2)
			params.MaxTokens = openai.Int(6)
			res, err := client.Chat.Completions.New(context.Background(), params, opts...)
			if err != nil {
				t.Fatal(err)
			}
			lps := res.Choices[0].Logprobs.Content
			_, _, n := expected(t, p, 6)
			if len(lps) != n {
				t.Fatalf("%d logprobs entries, want %d (one per generated token)", len(lps), n)
			}
			for i, lp := range lps {
				ref := p.Greedy32Top2[i]
				if len(lp.TopLogprobs) != 2 {
					t.Fatalf("step %d: %d top logprobs, want 2", i, len(lp.TopLogprobs))
				}
				for k := range 2 {
					want := string(m.Tokenizer.TokenBytes(int(ref[k][0])))
					if lp.TopLogprobs[k].Token != want {
						t.Fatalf("step %d: top %d is %q, reference %q", i, k, lp.TopLogprobs[k].Token, want)
					}
				}
				if lp.Token != lp.TopLogprobs[0].Token || lp.Logprob != lp.TopLogprobs[0].Logprob || lp.Logprob > 0 {
					t.Fatalf("step %d: chosen %q %g, best %q %g", i, lp.Token, lp.Logprob, lp.TopLogprobs[0].Token, lp.TopLogprobs[0].Logprob)
				}
				gap, refGap := lp.TopLogprobs[0].Logprob-lp.TopLogprobs[1].Logprob, ref[0][1]-ref[1][1]
				if math.Abs(gap-refGap) > 2e-3 {
					t.Fatalf("step %d: logprob gap %g, reference logit gap %g", i, gap, refGap)
				}
				if len(lp.Bytes) != len(lp.Token) {
					t.Fatalf("step %d: %d bytes for token %q", i, len(lp.Bytes), lp.Token)
				}
			}
		})
	}
}
