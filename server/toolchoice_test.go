package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// getTime is a second tool offered beside the reference prompt's
// get_weather, so that a named tool_choice has something to choose from.
const getTime = `{"type": "function", "function": {"name": "get_time", "description": "Get the current time in a time zone.",
	"parameters": {"type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET", "PST"]}}, "required": ["zone"]}}}`

// TestToolChoiceForced sends the reference tools prompt with tool_choice
// "required" and a named function, streamed and not, through the official
// client: the answer must be exactly one call of an offered (or the named)
// function, with arguments that are a JSON object of its parameters, and
// finish_reason tool_calls.
func TestToolChoiceForced(t *testing.T) {
	ts := start(t, Config{Parallel: 2})
	client := ts.openai()
	p := refs(t)["tools"]
	weather, err := json.Marshal(p.Tools[0])
	if err != nil {
		t.Fatal(err)
	}
	both := json.RawMessage("[" + string(weather) + "," + getTime + "]")
	cases := []struct {
		name     string
		tools    json.RawMessage // nil: the reference prompt's tools
		choice   string
		stream   bool
		wantName string // "" : any offered tool
		wantKey  string // a key the arguments must hold
	}{
		{name: "required", choice: `"required"`, wantName: "get_weather", wantKey: "city"},
		{name: "required stream", choice: `"required"`, stream: true, wantName: "get_weather", wantKey: "city"},
		{name: "required of two", tools: both, choice: `"required"`},
		{name: "named", choice: `{"type": "function", "function": {"name": "get_weather"}}`, wantName: "get_weather", wantKey: "city"},
		{name: "named other", tools: both, choice: `{"type": "function", "function": {"name": "get_time"}}`, wantName: "get_time", wantKey: "zone"},
		{name: "named other stream", tools: both, choice: `{"type": "function", "function": {"name": "get_time"}}`, stream: true, wantName: "get_time", wantKey: "zone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params, opts := chatParams(t, p)
			params.MaxCompletionTokens = openai.Int(96)
			if c.tools != nil {
				opts = append(opts, option.WithJSONSet("tools", c.tools))
			}
			opts = append(opts, option.WithJSONSet("tool_choice", json.RawMessage(c.choice)))
			var msg openai.ChatCompletionMessage
			var finish string
			if c.stream {
				stream := client.Chat.Completions.NewStreaming(context.Background(), params, opts...)
				var acc openai.ChatCompletionAccumulator
				for stream.Next() {
					acc.AddChunk(stream.Current())
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				msg, finish = acc.Choices[0].Message, acc.Choices[0].FinishReason
			} else {
				res, err := client.Chat.Completions.New(context.Background(), params, opts...)
				if err != nil {
					t.Fatal(err)
				}
				msg, finish = res.Choices[0].Message, res.Choices[0].FinishReason
			}
			if finish != "tool_calls" || len(msg.ToolCalls) != 1 {
				t.Fatalf("finish %q, tool calls %+v, content %q; want one call", finish, msg.ToolCalls, msg.Content)
			}
			fn := msg.ToolCalls[0].Function
			if c.wantName != "" && fn.Name != c.wantName {
				t.Fatalf("called %q, want %q", fn.Name, c.wantName)
			}
			if fn.Name != "get_weather" && fn.Name != "get_time" {
				t.Fatalf("called %q, which is not offered", fn.Name)
			}
			var args map[string]any
			if err := json.Unmarshal([]byte(fn.Arguments), &args); err != nil {
				t.Fatalf("arguments %q: %v", fn.Arguments, err)
			}
			if _, ok := args[c.wantKey]; c.wantKey != "" && !ok {
				t.Fatalf("arguments %s lack %q", fn.Arguments, c.wantKey)
			}
		})
	}
}

// TestToolChoiceNoneAndAuto checks that "auto" keeps the greedy reference
// call and "none" leaves the tools out of the prompt (a plain answer).
func TestToolChoiceNoneAndAuto(t *testing.T) {
	ts := start(t, Config{Parallel: 2})
	client := ts.openai()
	p := refs(t)["tools"]
	for _, c := range []struct {
		choice     string
		wantFinish string
	}{
		{choice: `"auto"`, wantFinish: "tool_calls"},
		{choice: `"none"`},
	} {
		t.Run(c.choice, func(t *testing.T) {
			params, opts := chatParams(t, p)
			params.MaxCompletionTokens = openai.Int(24)
			opts = append(opts, option.WithJSONSet("tool_choice", json.RawMessage(c.choice)))
			res, err := client.Chat.Completions.New(context.Background(), params, opts...)
			if err != nil {
				t.Fatal(err)
			}
			ch := res.Choices[0]
			if c.wantFinish != "" && ch.FinishReason != c.wantFinish {
				t.Fatalf("finish %q, want %q", ch.FinishReason, c.wantFinish)
			}
			if c.wantFinish == "" && len(ch.Message.ToolCalls) != 0 {
				t.Fatalf("tool_choice none gave tool calls %+v", ch.Message.ToolCalls)
			}
			want := len(p.TokenIDs)
			if c.choice == `"none"` && res.Usage.PromptTokens >= int64(want) {
				t.Fatalf("prompt has %d tokens with tool_choice none, %d with tools: tools still rendered", res.Usage.PromptTokens, want)
			}
		})
	}
}

// TestToolChoiceInvalid checks that malformed or impossible tool_choice
// values get 400 naming tool_choice.
func TestToolChoiceInvalid(t *testing.T) {
	ts := start(t, Config{Parallel: 1})
	client := ts.openai()
	p := refs(t)["tools"]
	cases := []struct {
		name, choice string
		noTools      bool
		format       bool
	}{
		{name: "unknown mode", choice: `"always"`},
		{name: "unknown function", choice: `{"type": "function", "function": {"name": "nope"}}`},
		{name: "no name", choice: `{"type": "function", "function": {}}`},
		{name: "wrong type", choice: `{"type": "tool", "function": {"name": "get_weather"}}`},
		{name: "not a choice", choice: `42`},
		{name: "required without tools", choice: `"required"`, noTools: true},
		{name: "required with response_format", choice: `"required"`, format: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params, opts := chatParams(t, p)
			if c.noTools {
				opts = append(opts, option.WithJSONDel("tools"))
			}
			if c.format {
				params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}}
			}
			opts = append(opts, option.WithJSONSet("tool_choice", json.RawMessage(c.choice)))
			_, err := client.Chat.Completions.New(context.Background(), params, opts...)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
				t.Fatalf("err = %v, want 400", err)
			}
			if apiErr.Param != "tool_choice" {
				t.Fatalf("param %q, want tool_choice (%s)", apiErr.Param, apiErr.Message)
			}
		})
	}
}
