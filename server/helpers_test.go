package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
)

// The tiny model and its engine are loaded once and shared by every test;
// each test starts its own server (and scheduler) on loopback.
var (
	tinyOnce  sync.Once
	tinyModel *model.Model
	tinyEng   *engine.Engine
	tinyErr   error
)

func tiny(t testing.TB) (*model.Model, *engine.Engine) {
	t.Helper()
	dir := testref.ModelDir(t)
	tinyOnce.Do(func() {
		tinyModel, tinyErr = format.Open(dir)
		if tinyErr != nil {
			return
		}
		tinyEng, tinyErr = engine.New(tinyModel.Config, tinyModel.Tensors, engine.OptionsFor(tinyModel, 2))
	})
	if tinyErr != nil {
		t.Fatalf("load tiny model: %v", tinyErr)
	}
	return tinyModel, tinyEng
}

// testServer is a real server on a loopback port.
type testServer struct {
	*Server
	url    string
	client *http.Client
	stop   func() error // graceful shutdown; Serve's result
}

// start serves the tiny model on 127.0.0.1 until the test ends, then shuts
// it down gracefully and checks that Serve returned cleanly.
func start(t testing.TB, cfg Config) *testServer {
	t.Helper()
	m, eng := tiny(t)
	if cfg.ModelName == "" {
		cfg.ModelName = "tiny"
	}
	srv, err := New(m, eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln, 30*time.Second) }()
	ts := &testServer{Server: srv, url: "http://" + ln.Addr().String(), client: &http.Client{Transport: &http.Transport{}}}
	var once sync.Once
	var serveErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-errc
			ts.client.CloseIdleConnections()
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ts
}

// openai returns an official OpenAI client for the server.
func (ts *testServer) openai(opts ...option.RequestOption) openai.Client {
	base := []option.RequestOption{
		option.WithBaseURL(ts.url + "/v1/"), option.WithAPIKey("unused"),
		option.WithHTTPClient(ts.client), option.WithMaxRetries(0),
	}
	return openai.NewClient(append(base, opts...)...)
}

// refs returns the reference prompts by name.
func refs(t testing.TB) map[string]testref.Prompt {
	t.Helper()
	out := map[string]testref.Prompt{}
	for _, p := range testref.HFOutputs(t) {
		out[p.Name] = p
	}
	return out
}

// eosIDs are the tiny model's end-of-sequence ids.
func eosIDs(t testing.TB) []int {
	m, _ := tiny(t)
	return m.EOS()
}

// expected is the greedy reference answer of p in at most max tokens: the
// text of the ids before the first EOS, whether it ended on EOS, and how
// many tokens were generated (EOS included).
func expected(t testing.TB, p testref.Prompt, max int) (text string, stopped bool, n int) {
	m, _ := tiny(t)
	ids := p.Greedy32
	if max > 0 && max < len(ids) {
		ids = ids[:max]
	}
	for i, id := range ids {
		if slices.Contains(eosIDs(t), id) {
			return m.Tokenizer.Decode(ids[:i]), true, i + 1
		}
	}
	return m.Tokenizer.Decode(ids), false, len(ids)
}

// chatParams turns a reference chat prompt into openai-go parameters; the
// tools go in as raw JSON (openai-go's parameter maps would sort their
// keys, and the template renders them in the order given).
func chatParams(t testing.TB, p testref.Prompt) (openai.ChatCompletionNewParams, []option.RequestOption) {
	t.Helper()
	var params openai.ChatCompletionNewParams
	for _, raw := range p.Messages {
		var m chat.Message
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		for i := range m.ToolCalls {
			m.ToolCalls[i].ID = "call_1"
		}
		if m.Role == "tool" {
			m.ToolCallID = "call_1"
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var u openai.ChatCompletionMessageParamUnion
		if err := json.Unmarshal(b, &u); err != nil {
			t.Fatalf("%s: message %s: %v", p.Name, b, err)
		}
		params.Messages = append(params.Messages, u)
	}
	params.Model = "tiny"
	params.Temperature = openai.Float(0)
	var opts []option.RequestOption
	if len(p.Tools) > 0 {
		tools, err := json.Marshal(p.Tools)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, option.WithJSONSet("tools", json.RawMessage(tools)))
	}
	return params, opts
}

// waitIdle waits until the scheduler runs no sequence.
func waitIdle(t testing.TB, s *Scheduler, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.Active() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sequences still active after %v", s.Active(), within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
