package chat

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Markers around a tool call in Qwen2.5's (and Hermes-style) output.
const (
	toolCallOpen  = "<tool_call>"
	toolCallClose = "</tool_call>"
)

// ParseToolCalls extracts the <tool_call>{"name": ..., "arguments": {...}}</tool_call>
// blocks that Qwen2.5 writes, and returns them with the text that remains
// around them (blocks removed, surrounding white space trimmed). Each call gets
// type "function", a fresh "call_" id, and its arguments as JSON text as
// written. Text without tool calls comes back unchanged with no calls. A block
// that is not closed or does not hold a JSON object with a name is an error;
// the returned content is then the text as given.
func ParseToolCalls(text string) ([]ToolCall, string, error) {
	if !strings.Contains(text, toolCallOpen) {
		return nil, text, nil
	}
	var (
		calls []ToolCall
		rest  strings.Builder
	)
	s := text
	for {
		i := strings.Index(s, toolCallOpen)
		if i < 0 {
			rest.WriteString(s)
			break
		}
		rest.WriteString(s[:i])
		s = s[i+len(toolCallOpen):]
		j := strings.Index(s, toolCallClose)
		if j < 0 {
			return nil, text, fmt.Errorf("chat: tool call %d: no %s", len(calls)+1, toolCallClose)
		}
		call, err := parseToolCallBody(s[:j])
		if err != nil {
			return nil, text, fmt.Errorf("chat: tool call %d: %w", len(calls)+1, err)
		}
		calls = append(calls, call)
		s = s[j+len(toolCallClose):]
	}
	return calls, strings.TrimSpace(rest.String()), nil
}

// parseToolCallBody reads {"name": ..., "arguments": ...}.
func parseToolCallBody(body string) (ToolCall, error) {
	var raw struct {
		Name      *string         `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return ToolCall{}, fmt.Errorf("decoding %q: %w", truncate(body, 80), err)
	}
	if dec.More() {
		return ToolCall{}, fmt.Errorf("text after the JSON object in %q", truncate(body, 80))
	}
	if raw.Name == nil || *raw.Name == "" {
		return ToolCall{}, errors.New("no function name")
	}
	args := bytes.TrimSpace(raw.Arguments)
	var arguments string
	switch {
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		arguments = "{}"
	case args[0] == '"':
		// Some models write the arguments as a string holding JSON.
		if err := json.Unmarshal(args, &arguments); err != nil {
			return ToolCall{}, fmt.Errorf("arguments of %q: %w", *raw.Name, err)
		}
	default:
		arguments = string(args)
	}
	return ToolCall{ID: newCallID(), Type: "function", Function: FunctionCall{Name: *raw.Name, Arguments: arguments}}, nil
}

// newCallID returns "call_" and 24 random hex digits.
func newCallID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "call_" + hex.EncodeToString(b[:])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
