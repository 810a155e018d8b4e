package chat

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseToolCalls(t *testing.T) {
	type call struct{ name, args string }
	tests := []struct {
		name    string
		text    string
		calls   []call
		content string
		wantErr bool
	}{
		{"no calls", "The answer is 4.", nil, "The answer is 4.", false},
		{"one call", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
			[]call{{"get_weather", `{"city": "Paris"}`}}, "", false},
		{"content around", "Let me check.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>\nDone",
			[]call{{"f", `{}`}}, "Let me check.\n\nDone", false},
		{"two calls", "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"y\": [1, 2]}}\n</tool_call>",
			[]call{{"a", `{"x": 1}`}, {"b", `{"y": [1, 2]}`}}, "", false},
		{"arguments as a string", "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>",
			[]call{{"f", `{"a": 1}`}}, "", false},
		{"no arguments", "<tool_call>{\"name\": \"now\"}</tool_call>", []call{{"now", `{}`}}, "", false},
		{"key order and non-ASCII kept", "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"z\": \"é\", \"a\": 1.0}}\n</tool_call>",
			[]call{{"f", `{"z": "é", "a": 1.0}`}}, "", false},
		{"unterminated", "<tool_call>\n{\"name\": \"f\", \"argu", nil, "", true},
		{"not JSON", "<tool_call>\nget_weather(Paris)\n</tool_call>", nil, "", true},
		{"no name", "<tool_call>{\"arguments\": {}}</tool_call>", nil, "", true},
		{"trailing text in block", "<tool_call>{\"name\": \"f\"} extra</tool_call>", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, content, err := ParseToolCalls(tt.text)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error; calls %+v", calls)
				}
				if content != tt.text {
					t.Errorf("content on error: got %q, want the text", content)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if content != tt.content {
				t.Errorf("content: got %q, want %q", content, tt.content)
			}
			if len(calls) != len(tt.calls) {
				t.Fatalf("got %d calls, want %d", len(calls), len(tt.calls))
			}
			for i, c := range calls {
				if c.Function.Name != tt.calls[i].name || c.Function.Arguments != tt.calls[i].args || c.Type != "function" {
					t.Errorf("call %d: got %+v, want %+v", i, c, tt.calls[i])
				}
				if !strings.HasPrefix(c.ID, "call_") || len(c.ID) != len("call_")+24 {
					t.Errorf("call %d: id %q", i, c.ID)
				}
			}
		})
	}
}

// TestToolCallRoundTrip parses a call the way the model writes it and renders
// it back through the model's template: the assistant turn reads as written.
func TestToolCallRoundTrip(t *testing.T) {
	tmpl := loadModelTemplate(t)
	generated := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Tokyo\", \"days\": 2}}\n</tool_call>"
	calls, content, err := ParseToolCalls(generated)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{Role: "user", Content: "Weather?"},
		{Role: "assistant", Content: content, ToolCalls: calls},
	}
	// Through JSON, as a server would receive it back from a client.
	data, err := json.Marshal(msgs)
	if err != nil {
		t.Fatal(err)
	}
	var back []Message
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(Request{Messages: back})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>assistant\n" + generated + "<|im_end|>\n"
	if !strings.HasSuffix(got, want) {
		t.Errorf("got %q, want it to end with %q", got, want)
	}
}
