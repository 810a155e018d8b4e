package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseRequest feeds fuzzed bodies to the request parsers (chat,
// completions and the job's field checks): nothing panics, and every
// refusal is a request error naming a field, never an internal one.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"], "temperature": 0.5, "top_logprobs": 2}`))
	f.Add([]byte(`{"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}], "tools": [{"type": "function", "function": {"name": "f"}}]}`))
	f.Add([]byte(`{"prompt": ["x"], "suffix": "y", "max_tokens": 3, "stop": "z"}`))
	f.Add([]byte(`{"prompt": [1, 2, 3], "n": 2}`))
	f.Add([]byte(`{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}`))
	m, eng := tiny(f)
	s, err := New(m, eng, Config{Parallel: 1, CtxSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) {
			var pe *paramError
			var ce *contextError
			if err != nil && !errors.As(err, &pe) && !errors.As(err, &ce) {
				t.Fatalf("%s: error %v is not a request error", body, err)
			}
		}
		var chatReq chatRequest
		if json.NewDecoder(bytes.NewReader(body)).Decode(&chatReq) == nil {
			if prompt, tools, choice, err := s.chatPrompt(&chatReq); err != nil {
				check(err)
			} else {
				if choice.forced() {
					_, err := choice.callSchema(tools)
					check(err)
				}
				_, err := s.job(context.Background(), &chatReq.genFields, prompt, chatReq.MaxCompletionTokens)
				check(err)
				if chatReq.ResponseFormat != nil {
					_, err := s.responseFilter(chatReq.ResponseFormat)
					check(err)
				}
			}
		}
		var compReq completionRequest
		if json.NewDecoder(bytes.NewReader(body)).Decode(&compReq) == nil {
			if prompt, err := s.completionPrompt(&compReq); err != nil {
				check(err)
			} else {
				_, err := s.job(context.Background(), &compReq.genFields, prompt, nil)
				check(err)
			}
		}
	})
}
