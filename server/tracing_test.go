package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/apr-llm/apr/trace"
)

// traceLine is the union of the request trace's line fields the test reads.
type traceLine struct {
	Type   string        `json:"type"`
	Pass   int           `json:"pass"`
	Layer  int           `json:"layer"`
	Brick  string        `json:"brick"`
	Rows   int           `json:"rows"`
	Bricks int           `json:"bricks"`
	Output *trace.Stats  `json:"output"`
	Outs   []trace.Stats `json:"outputs"`
}

// traceBody is a response's "trace" member.
type traceBody struct {
	Level string      `json:"level"`
	Lines []traceLine `json:"lines"`
}

// checkTrace checks that lines are the trace of one sequence that was fed
// prompt tokens in its first pass and one token in each of passes more:
// every line's rows are the sequence's own, even when other requests
// shared the batched passes.
func checkTrace(t *testing.T, tb traceBody, level string, prompt, passes, layers int) {
	t.Helper()
	if tb.Level != level {
		t.Fatalf("trace level %q, want %q", tb.Level, level)
	}
	seen, layerLines, brickLines := 0, 0, 0
	for _, l := range tb.Lines {
		want := 1
		if l.Pass == 0 {
			want = prompt
		}
		switch l.Type {
		case "pass":
			if l.Pass != seen || l.Rows != want {
				t.Fatalf("pass line %+v, want pass %d of %d rows", l, seen, want)
			}
			seen++
		case "layer":
			layerLines++
			if l.Rows != want || l.Bricks != 10 || l.Output == nil || l.Output.N == 0 {
				t.Fatalf("layer line %+v, want %d rows of 10 bricks with an output", l, want)
			}
		case "brick":
			brickLines++
			if l.Brick == "lm_head" || (l.Layer < 0 && l.Brick == "rms_norm") {
				want = 1
			}
			if l.Rows != want || len(l.Outs) == 0 {
				t.Fatalf("brick line %+v, want %d rows (the sequence's own)", l, want)
			}
		default:
			t.Fatalf("line type %q", l.Type)
		}
	}
	if seen != passes {
		t.Fatalf("%d pass lines, want %d", seen, passes)
	}
	wantLayers, wantBricks := passes*layers, passes*(3+10*layers)
	if level == "layer" {
		wantBricks = passes * 3
	} else {
		wantLayers = 0
	}
	if layerLines != wantLayers || brickLines != wantBricks {
		t.Fatalf("%d layer and %d brick lines, want %d and %d", layerLines, brickLines, wantLayers, wantBricks)
	}
}

// TestTraceHeader sends chat requests with X-Trace-Level while untraced
// requests share the batch: each traced response carries its own
// sequence's trace (in the body, or as the last chunk before [DONE] when
// streamed), the answer stays the greedy reference, and untraced
// responses carry none.
func TestTraceHeader(t *testing.T) {
	ts := start(t, Config{Parallel: 4})
	client := ts.openai()
	m, _ := tiny(t)
	layers := m.Config.NumLayers
	r := refs(t)
	p := r["two_plus_two"]
	want, _, n := expected(t, p, 0)
	cases := []struct {
		name, level string
		stream      bool
	}{
		{name: "brick", level: "brick"},
		{name: "layer", level: "layer"},
		{name: "layer stream", level: "layer", stream: true},
		{name: "none", level: "none"},
		{name: "absent"},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Untraced neighbours in the same batched passes.
			for _, other := range []string{"python_sum", "go_hello"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					params, opts := chatParams(t, r[other])
					_, _ = client.Chat.Completions.New(context.Background(), params, opts...)
				}()
			}
			params, opts := chatParams(t, p)
			if c.level != "" {
				opts = append(opts, option.WithHeader("X-Trace-Level", c.level))
			}
			var raw *http.Response
			opts = append(opts, option.WithResponseInto(&raw))
			var tb *traceBody
			var got string
			var cached int64 // prompt tokens reused from a slot's cache (not fed)
			if c.stream {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				stream := client.Chat.Completions.NewStreaming(context.Background(), params, opts...)
				var sb strings.Builder
				for stream.Next() {
					ch := stream.Current()
					if len(ch.Choices) > 0 {
						sb.WriteString(ch.Choices[0].Delta.Content)
					}
					var x struct{ Trace *traceBody }
					if err := json.Unmarshal([]byte(ch.RawJSON()), &x); err != nil {
						t.Fatal(err)
					}
					if x.Trace != nil {
						tb = x.Trace
					}
					if ch.Usage.PromptTokens > 0 {
						cached = ch.Usage.PromptTokensDetails.CachedTokens
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				got = sb.String()
			} else {
				res, err := client.Chat.Completions.New(context.Background(), params, opts...)
				if err != nil {
					t.Fatal(err)
				}
				var x struct{ Trace *traceBody }
				if err := json.Unmarshal([]byte(res.RawJSON()), &x); err != nil {
					t.Fatal(err)
				}
				tb, got = x.Trace, res.Choices[0].Message.Content
				cached = res.Usage.PromptTokensDetails.CachedTokens
			}
			if got != want {
				t.Fatalf("answer %q, reference %q", got, want)
			}
			if c.level == "" || c.level == "none" {
				if tb != nil || raw.Header.Get("X-Trace-Level") != "" {
					t.Fatalf("untraced request got a trace (%d lines), header %q", len(tb.Lines), raw.Header.Get("X-Trace-Level"))
				}
				return
			}
			if tb == nil {
				t.Fatal("no trace in the response")
			}
			if h := raw.Header.Get("X-Trace-Level"); h != c.level {
				t.Fatalf("X-Trace-Level response header %q, want %q", h, c.level)
			}
			// n tokens generated: the prompt pass and n-1 fed back.
			checkTrace(t, *tb, c.level, len(p.TokenIDs)-int(cached), n, layers)
		})
	}
	wg.Wait()
	waitIdle(t, ts.Scheduler(), 10e9)
	if ts.Scheduler().tracer.recorder(nil) != nil || len(ts.Scheduler().tracer.recs) != 0 {
		t.Fatalf("%d recorders left attached", len(ts.Scheduler().tracer.recs))
	}
}

// TestTraceHeaderInvalid: an unknown level is a 400 naming the header.
func TestTraceHeaderInvalid(t *testing.T) {
	ts := start(t, Config{Parallel: 1})
	client := ts.openai()
	for _, level := range []string{"token", "verbose"} {
		_, err := client.Completions.New(context.Background(), openai.CompletionNewParams{
			Model: "tiny", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")},
		}, option.WithHeader("X-Trace-Level", level))
		apiErr, ok := err.(*openai.Error)
		if !ok || apiErr.StatusCode != http.StatusBadRequest || apiErr.Param != "X-Trace-Level" {
			t.Fatalf("level %q: err %v, want 400 naming X-Trace-Level", level, err)
		}
	}
}
