package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"go.uber.org/goleak"

	"github.com/apr-llm/apr/sample"
)

// post sends a JSON body and returns the response.
func (ts *testServer) post(t testing.TB, ctx context.Context, path, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", ts.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// longStream starts a streamed raw completion that would run for long and
// returns once its first chunk arrived.
func (ts *testServer) longStream(t testing.TB, ctx context.Context) *http.Response {
	t.Helper()
	return ts.longStreamN(t, ctx, 400)
}

// longStreamN is longStream asking for maxTokens tokens.
func (ts *testServer) longStreamN(t testing.TB, ctx context.Context, maxTokens int) *http.Response {
	t.Helper()
	body := fmt.Sprintf(`{"prompt": "package main\n", "max_tokens": %d, "temperature": 0, "stream": true}`, maxTokens)
	res := ts.post(t, ctx, "/v1/completions", body)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q: %v", line, err)
	}
	return res
}

// TestDisconnectFreesSlot drops a client mid-stream: its sequence must
// leave the batch within one decode step, and the slot serves the next
// request.
func TestDisconnectFreesSlot(t *testing.T) {
	tiny(t)
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	ts := start(t, Config{Parallel: 1, QueueSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	res := ts.longStream(t, ctx)
	if ts.sched.Active() != 1 {
		t.Fatalf("%d active sequences, want 1", ts.sched.Active())
	}
	before := ts.sched.Steps()
	cancel()
	res.Body.Close()
	waitIdle(t, ts.sched, 10*time.Second)
	if d := ts.sched.freedAfterCancel.Load(); d > 1 {
		t.Fatalf("the slot was freed %d decode steps after the disconnect, want at most 1", d)
	}
	if ran := ts.sched.Steps() - before; ran > 390 {
		t.Fatalf("%d steps ran after the disconnect: the request ran to its end", ran)
	}
	// The freed slot answers the next request.
	p := refs(t)["two_plus_two"]
	params, opts := chatParams(t, p)
	client := ts.openai()
	got, err := client.Chat.Completions.New(context.Background(), params, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if want, _, _ := expected(t, p, 0); got.Choices[0].Message.Content != want {
		t.Fatalf("after the disconnect: %q, want %q", got.Choices[0].Message.Content, want)
	}
}

// TestQueueFull503 fills the only slot and the queue: the next request gets
// 503 with Retry-After in OpenAI's error shape.
func TestQueueFull503(t *testing.T) {
	ts := start(t, Config{Parallel: 1, QueueSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := ts.longStream(t, ctx)
	defer first.Body.Close()
	queued := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.url+"/v1/completions",
			strings.NewReader(`{"prompt": "x", "max_tokens": 2, "temperature": 0}`))
		res, err := ts.client.Do(req)
		if err != nil {
			queued <- nil
			return
		}
		queued <- res
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(ts.sched.queue) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second request never reached the queue")
		}
		time.Sleep(time.Millisecond)
	}
	res := ts.post(t, context.Background(), "/v1/completions", `{"prompt": "y", "max_tokens": 2}`)
	defer res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	checkErrorShape(t, res, "server_error")
	cancel()
	if r := <-queued; r != nil {
		r.Body.Close()
	}
}

// checkErrorShape reads an OpenAI error body.
func checkErrorShape(t testing.TB, res *http.Response, typ string) string {
	t.Helper()
	var body struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error == nil {
		t.Fatalf("error body: %v (%+v)", err, body)
	}
	if body.Error.Type != typ || body.Error.Message == "" {
		t.Fatalf("error %+v, want type %q and a message", *body.Error, typ)
	}
	return body.Error.Message
}

// TestGracefulShutdown stops the server while a request streams: the request
// finishes completely, new connections are refused, and nothing leaks.
func TestGracefulShutdown(t *testing.T) {
	tiny(t)
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	ts := start(t, Config{Parallel: 2})
	p := refs(t)["go_hello"]
	params, opts := chatParams(t, p)
	client := ts.openai()
	stream := client.Chat.Completions.NewStreaming(context.Background(), params, opts...)
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	var text string
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) > 0 {
			text += ch.Choices[0].Delta.Content
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("in-flight stream broke at shutdown: %v", err)
	}
	if want, _, _ := expected(t, p, 0); text != want {
		t.Fatalf("in-flight answer %q, want %q", text, want)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := http.Get(ts.url + "/health"); err == nil {
		t.Fatal("the server still accepts connections after shutdown")
	}
	if err := ts.sched.submit(&job{ctx: context.Background(), prompt: []int{1}}); err != ErrShuttingDown {
		t.Fatalf("submit after shutdown: %v, want ErrShuttingDown", err)
	}
}

// TestPrefixReuse sends a conversation's second turn after its first: the
// second reuses the cached prompt prefix, reports it in
// usage.prompt_tokens_details.cached_tokens, and answers as transformers
// does without any cache.
func TestPrefixReuse(t *testing.T) {
	ts := start(t, Config{Parallel: 2})
	client := ts.openai()
	p := refs(t)["multi_turn"]
	all, opts := chatParams(t, p)
	first := all
	first.Messages = all.Messages[:1]
	r1, err := client.Chat.Completions.New(context.Background(), first, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Usage.PromptTokensDetails.CachedTokens != 0 {
		t.Fatalf("first turn on a fresh server reports %d cached tokens", r1.Usage.PromptTokensDetails.CachedTokens)
	}
	if r1.Choices[0].Message.Content != "7" {
		t.Fatalf("first turn %q; the reference conversation answers 7", r1.Choices[0].Message.Content)
	}
	r2, err := client.Chat.Completions.New(context.Background(), all, opts...)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := expected(t, p, 0)
	if r2.Choices[0].Message.Content != want {
		t.Fatalf("second turn %q, reference (no cache) %q", r2.Choices[0].Message.Content, want)
	}
	// The cache holds the first prompt and the answer's token "7" (EOS was
	// never fed).
	cached := r2.Usage.PromptTokensDetails.CachedTokens
	if cached != r1.Usage.PromptTokens+1 {
		t.Fatalf("cached_tokens = %d, want %d (first prompt + answer)", cached, r1.Usage.PromptTokens+1)
	}
	if r2.Usage.PromptTokens != int64(len(p.TokenIDs)) {
		t.Fatalf("prompt_tokens = %d, want %d", r2.Usage.PromptTokens, len(p.TokenIDs))
	}
	// Asking the same again reuses all but the last prompt token.
	r3, err := client.Chat.Completions.New(context.Background(), all, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Choices[0].Message.Content != want || r3.Usage.PromptTokensDetails.CachedTokens != int64(len(p.TokenIDs)-1) {
		t.Fatalf("repeat: %q with %d cached, want %q with %d", r3.Choices[0].Message.Content, r3.Usage.PromptTokensDetails.CachedTokens, want, len(p.TokenIDs)-1)
	}
}

// TestRequestErrors sends bad requests: each gets its status and OpenAI's
// error shape, never a 500.
func TestRequestErrors(t *testing.T) {
	ts := start(t, Config{Parallel: 1, CtxSize: 64, MaxBody: 4096, APIKey: "sekret"})
	auth := []string{"Authorization", "Bearer sekret"}
	long := strings.Repeat("word ", 100)
	cases := []struct {
		name, path, body string
		header           []string
		status           int
		typ, contains    string
	}{
		{"no key", "/v1/chat/completions", `{}`, nil, 401, "invalid_request_error", "API key"},
		{"wrong key", "/tokenize", `{"content": "x"}`, []string{"Authorization", "Bearer nope"}, 401, "invalid_request_error", "API key"},
		{"invalid JSON", "/v1/chat/completions", `{"messages": [`, auth, 400, "invalid_request_error", "JSON"},
		{"wrong type", "/v1/chat/completions", `{"messages": "hi"}`, auth, 400, "invalid_request_error", "messages"},
		{"no messages", "/v1/chat/completions", `{"messages": []}`, auth, 400, "invalid_request_error", "messages"},
		{"bad role", "/v1/chat/completions", `{"messages": [{"role": "robot", "content": "hi"}]}`, auth, 400, "invalid_request_error", "robot"},
		{"n=2", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "n": 2}`, auth, 400, "invalid_request_error", "n must be 1"},
		{"temperature", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "temperature": 3}`, auth, 400, "invalid_request_error", "temperature"},
		{"max_tokens 0", "/v1/completions", `{"prompt": "hi", "max_tokens": 0}`, auth, 400, "invalid_request_error", "max_tokens"},
		{"top_logprobs", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 50}`, auth, 400, "invalid_request_error", "top_logprobs"},
		{"stop type", "/v1/completions", `{"prompt": "hi", "stop": 5}`, auth, 400, "invalid_request_error", "stop"},
		{"context overflow", "/v1/completions", `{"prompt": "` + long + `"}`, auth, 400, "invalid_request_error", "context is 64 tokens"},
		{"token id", "/v1/completions", `{"prompt": [1, 999999999]}`, auth, 400, "invalid_request_error", "vocabulary"},
		{"no prompt", "/v1/completions", `{}`, auth, 400, "invalid_request_error", "prompt"},
		{"body too large", "/v1/completions", `{"prompt": "` + strings.Repeat("a", 5000) + `"}`, auth, 413, "invalid_request_error", "larger"},
		{"unknown path", "/v2/nothing", `{}`, auth, 404, "invalid_request_error", "no endpoint"},
		{"detokenize id", "/detokenize", `{"tokens": [-1]}`, auth, 400, "invalid_request_error", "vocabulary"},
		{"response_format", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}}`, auth, 400, "invalid_request_error", "response_format"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := ts.post(t, context.Background(), c.path, c.body, c.header...)
			defer res.Body.Close()
			if res.StatusCode != c.status {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d (%s), want %d", res.StatusCode, b, c.status)
			}
			if msg := checkErrorShape(t, res, c.typ); !strings.Contains(msg, c.contains) {
				t.Fatalf("message %q does not mention %q", msg, c.contains)
			}
		})
	}
	// /health needs no key.
	res, err := ts.client.Get(ts.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/health without a key: %d", res.StatusCode)
	}
	// A request near the context limit is cut with finish_reason "length".
	res = ts.post(t, context.Background(), "/v1/completions", `{"prompt": "`+strings.Repeat("word ", 55)+`", "max_tokens": 500, "temperature": 0}`, auth...)
	defer res.Body.Close()
	var out openai.Completion
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("status %d: %v", res.StatusCode, err)
	}
	if out.Choices[0].FinishReason != "length" || out.Usage.TotalTokens != 64 {
		t.Fatalf("finish %q with %d total tokens, want length at 64", out.Choices[0].FinishReason, out.Usage.TotalTokens)
	}
}

// TestCloseFinishesQueued closes the scheduler while one request runs and
// another waits: both finish with their full answers before Close returns.
func TestCloseFinishesQueued(t *testing.T) {
	m, eng := tiny(t)
	s := NewScheduler(eng, m.Tokenizer, m.EOS(), SchedulerOptions{Parallel: 1, QueueSize: 2, CtxSize: 128}, newMetrics())
	p := refs(t)["raw_go"]
	var jobs []*job
	for range 2 {
		j := &job{ctx: context.Background(), prompt: p.TokenIDs, maxTokens: 6, sampler: sample.New(sample.Params{})}
		if err := s.submit(j); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want, _, _ := expected(t, p, 6)
	for i, j := range jobs {
		var text string
		for ev := range j.events {
			if ev.err != nil {
				t.Fatalf("job %d: %v", i, ev.err)
			}
			text += ev.text
			if ev.done {
				break
			}
		}
		if text != want {
			t.Fatalf("job %d: %q, want %q", i, text, want)
		}
	}
}
