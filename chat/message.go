// Package chat turns conversations into prompt text through a model's own
// Jinja chat template (rendered by github.com/ardanlabs/jinja), and parses the
// tool calls a model writes back.
//
// Rendering aims to be byte-for-byte what Hugging Face transformers'
// apply_chat_template produces: JSON given for tools and tool-call arguments
// keeps its key order, and the template's tojson filter writes JSON as
// Python's json.dumps does (", " and ": " separators, non-ASCII kept, Python
// float formatting).
package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Message is one turn of a conversation, shaped like a message of the OpenAI
// chat completions API.
type Message struct {
	// Role is "system", "user", "assistant" or "tool" (templates may accept
	// others).
	Role string `json:"role"`
	// Content is the text of the message. When decoding JSON, null becomes ""
	// and a list of content parts becomes the concatenation of its text parts.
	Content string `json:"content"`
	// ToolCalls are the calls an assistant message makes.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// Name optionally names the author (or, for a tool message, the tool).
	Name string `json:"name,omitempty"`
	// ToolCallID links a tool message to the call it answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// UnmarshalJSON decodes a message, accepting a null content and the OpenAI
// list-of-parts form of content (its "text" parts are joined).
func (m *Message) UnmarshalJSON(data []byte) error {
	var raw struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCalls  []ToolCall      `json:"tool_calls"`
		Name       string          `json:"name"`
		ToolCallID string          `json:"tool_call_id"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("chat: decoding message: %w", err)
	}
	content, err := decodeContent(raw.Content)
	if err != nil {
		return fmt.Errorf("chat: decoding content of %q message: %w", raw.Role, err)
	}
	*m = Message{Role: raw.Role, Content: content, ToolCalls: raw.ToolCalls, Name: raw.Name, ToolCallID: raw.ToolCallID}
	return nil
}

// decodeContent reads a content field: absent, null, a string, or a list of
// parts of which the text ones are joined.
func decodeContent(data json.RawMessage) (string, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return "", nil
	}
	switch data[0] {
	case '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return "", err
		}
		return s, nil
	case '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(data, &parts); err != nil {
			return "", err
		}
		var sb strings.Builder
		for _, p := range parts {
			if p.Type == "text" || (p.Type == "" && p.Text != "") {
				sb.WriteString(p.Text)
			}
		}
		return sb.String(), nil
	}
	return "", fmt.Errorf("content must be a string, null or a list of parts, got %.20s", data)
}

// ToolCall is one call of a function by the assistant, as in the OpenAI API.
type ToolCall struct {
	// ID identifies the call; tool messages answer it by ToolCallID.
	ID string `json:"id,omitempty"`
	// Type is "function".
	Type string `json:"type"`
	// Function names the function and carries its arguments.
	Function FunctionCall `json:"function"`
}

// FunctionCall is the function part of a ToolCall.
type FunctionCall struct {
	// Name is the function's name.
	Name string `json:"name"`
	// Arguments is the JSON text of the arguments (normally an object), the
	// form the OpenAI API uses. Templates receive it as the parsed JSON value,
	// key order kept, when it is a JSON object, and as a string otherwise.
	Arguments string `json:"arguments"`
}

// UnmarshalJSON accepts arguments both as a JSON string holding JSON text
// (the OpenAI form) and as a JSON object (the Hugging Face form), whose text
// is kept as it was written.
func (f *FunctionCall) UnmarshalJSON(data []byte) error {
	var raw struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("chat: decoding function call: %w", err)
	}
	args := bytes.TrimSpace(raw.Arguments)
	f.Name = raw.Name
	switch {
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		f.Arguments = ""
	case args[0] == '"':
		if err := json.Unmarshal(args, &f.Arguments); err != nil {
			return fmt.Errorf("chat: decoding arguments of %q: %w", raw.Name, err)
		}
	default:
		f.Arguments = string(args)
	}
	return nil
}
