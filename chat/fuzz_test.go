package chat

import (
	"encoding/json"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// FuzzRender renders random conversations through the model's real template
// and ChatML, parses fuzzed text as a template and as tool calls: errors are
// fine, panics are not. (Fuzzed templates are parsed, not rendered: a template
// can recurse through macros without bound, which no content can make the
// model's template do.)
func FuzzRender(f *testing.F) {
	f.Add("user", "What is 2+2?", "assistant", "4", "", `{"city": "Paris"}`, true)
	f.Add("system", "", "tool", "{\"t\": 21}", `{"type": "function", "function": {"name": "f"}}`, `"x"`, false)
	f.Add("assistant", "{{ messages }}", "user", "<|im_end|>", `[]`, `{`, true)
	tmpl, err := LoadDir(testref.ModelDir(f))
	if err != nil {
		f.Fatalf("LoadDir: %v", err)
	}
	f.Fuzz(func(t *testing.T, role1, content1, role2, content2, tool, args string, gen bool) {
		msgs := []Message{
			{Role: role1, Content: content1},
			{Role: role2, Content: content2, ToolCalls: []ToolCall{{Type: "function", Function: FunctionCall{Name: content1, Arguments: args}}}},
			{Role: "tool", Content: content2},
		}
		var tools []json.RawMessage
		if tool != "" {
			tools = []json.RawMessage{json.RawMessage(tool)}
		}
		req := Request{Messages: msgs, Tools: tools, AddGenerationPrompt: gen, System: content2}
		_, _ = tmpl.Render(req)
		_, _ = ChatML().Render(req)
		_, _ = New(content1)
		_, _, _ = ParseToolCalls(content2)
	})
}
