package chat

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apr-llm/apr/internal/testref"
)

// refPrompt is one prompt of hf_outputs.json.
type refPrompt struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Messages []Message         `json:"messages"`
	Tools    []json.RawMessage `json:"tools"`
	Text     string            `json:"text"`
}

func loadRefPrompts(t *testing.T) []refPrompt {
	t.Helper()
	data, err := os.ReadFile(testref.Path(t, "testdata", "reference", "hf_outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []refPrompt `json:"prompts"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("hf_outputs.json: %v", err)
	}
	return ref.Prompts
}

func loadModelTemplate(t testing.TB) *Template {
	t.Helper()
	tmpl, err := LoadDir(testref.ModelDir(t))
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	return tmpl
}

// TestReferencePrompts renders every chat prompt of hf_outputs.json through
// the model's own template and compares with transformers' text.
func TestReferencePrompts(t *testing.T) {
	loaded := loadModelTemplate(t)
	// The same source as GGUF metadata would carry it.
	fromSource, err := FromSource(loaded.Source())
	if err != nil {
		t.Fatalf("FromSource: %v", err)
	}
	n, withTools := 0, 0
	for _, p := range loadRefPrompts(t) {
		if p.Kind != "chat" {
			continue
		}
		n++
		if len(p.Tools) > 0 {
			withTools++
		}
		t.Run(p.Name, func(t *testing.T) {
			for name, tmpl := range map[string]*Template{"LoadDir": loaded, "FromSource": fromSource} {
				got, err := tmpl.Render(Request{Messages: p.Messages, Tools: p.Tools, AddGenerationPrompt: true})
				if err != nil {
					t.Fatalf("%s: Render: %v", name, err)
				}
				if got != p.Text {
					t.Errorf("%s: rendered prompt differs from transformers'\n got: %q\nwant: %q", name, got, p.Text)
				}
			}
		})
	}
	if n == 0 || withTools == 0 {
		t.Fatalf("hf_outputs.json: %d chat prompts, %d with tools: expected both", n, withTools)
	}
}

// TestOpenAIArgumentsString checks that arguments given as a JSON string (the
// OpenAI form) render like the object form.
func TestOpenAIArgumentsString(t *testing.T) {
	tmpl := loadModelTemplate(t)
	var obj, str []Message
	if err := json.Unmarshal([]byte(`[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":{"b":1.0,"a":"é<&>"}}}]}]`), &obj); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"b\": 1.0, \"a\": \"é<&>\"}"}}]}]`), &str); err != nil {
		t.Fatal(err)
	}
	a, err := tmpl.Render(Request{Messages: obj})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tmpl.Render(Request{Messages: str})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("object and string arguments differ:\n%q\n%q", a, b)
	}
	want := `{"name": "f", "arguments": {"b": 1.0, "a": "é<&>"}}`
	if !strings.Contains(a, want) {
		t.Errorf("rendered %q, want it to contain %q", a, want)
	}
}

func TestChatMLFallback(t *testing.T) {
	msgs := []Message{
		{Role: "system", Content: "Be brief."},
		{Role: "user", Content: "Hi"},
		{Role: "assistant", Content: "Hello."},
		{Role: "user", Content: "Bye"},
	}
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"generation prompt", Request{Messages: msgs, AddGenerationPrompt: true},
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"},
		{"no generation prompt", Request{Messages: msgs[1:2]},
			"<|im_start|>user\nHi<|im_end|>\n"},
		{"system option", Request{Messages: msgs[1:2], System: "S", AddGenerationPrompt: true},
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"empty", Request{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChatML().Render(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	write := func(t *testing.T, dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	req := Request{Messages: []Message{{Role: "user", Content: "x"}}, AddGenerationPrompt: true}
	tools := Request{Messages: req.Messages, Tools: []json.RawMessage{json.RawMessage(`{"type":"function"}`)}}
	tests := []struct {
		name      string
		files     map[string]string
		req       Request
		want      string
		wantError bool
	}{
		{"jinja file wins", map[string]string{
			"chat_template.jinja":   "J{{ bos_token }}{{ messages[0].content }}",
			"tokenizer_config.json": `{"chat_template": "C", "bos_token": "<s>"}`,
		}, req, "J<s>x", false},
		{"chat_template.json", map[string]string{
			"chat_template.json":    `{"chat_template": "T{{ eos_token }}"}`,
			"tokenizer_config.json": `{"chat_template": "C", "eos_token": {"content": "</s>"}}`,
		}, req, "T</s>", false},
		{"config string", map[string]string{
			"tokenizer_config.json": `{"chat_template": "C{{ messages|length }}"}`,
		}, req, "C1", false},
		{"config list default", map[string]string{
			"tokenizer_config.json": `{"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "U{{ tools|length }}"}]}`,
		}, req, "D", false},
		{"config list tool_use", map[string]string{
			"tokenizer_config.json": `{"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "U{{ tools|length }}"}]}`,
		}, tools, "U1", false},
		{"config list without default", map[string]string{
			"tokenizer_config.json": `{"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]}`,
		}, req, "", true},
		{"no template: ChatML", map[string]string{
			"tokenizer_config.json": `{"eos_token": "<|im_end|>"}`,
		}, req, "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n", false},
		{"empty folder: ChatML", nil, req, "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n", false},
		{"bad config", map[string]string{"tokenizer_config.json": `{`}, req, "", true},
		{"bad jinja file", map[string]string{"chat_template.jinja": `{% if %}`}, req, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				write(t, dir, name, content)
			}
			tmpl, err := LoadDir(dir)
			if tt.wantError {
				if err == nil {
					t.Fatal("LoadDir: no error")
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadDir: %v", err)
			}
			got, err := tmpl.Render(tt.req)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBadTemplate(t *testing.T) {
	for _, src := range []string{
		"{% if messages %}",
		"{{ messages[0 }}",
		"{% for %}{% endfor %}",
		"{% endif %}",
		"{{ }",
	} {
		if _, err := New(src); err == nil {
			t.Errorf("New(%q): no error", src)
		} else if !strings.HasPrefix(err.Error(), "chat: parsing template") {
			t.Errorf("New(%q): error %q lacks context", src, err)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		req  Request
	}{
		{"raise_exception", "{{ raise_exception('no tools here') }}", Request{}},
		{"unknown filter", "{{ messages | nosuchfilter }}", Request{}},
		{"bad tool JSON", "{{ tools }}", Request{Tools: []json.RawMessage{json.RawMessage(`{"a":`)}}},
		{"call of a non-callable", "{{ messages() }}", Request{}},
		{"engine panic: negative repeat", "{{ 'a' * -1 }}", Request{}},
		{"engine panic: negative indent", "{{ 'a' | indent(-5) }}", Request{}},
		{"tojson of a callable", "{{ raise_exception | tojson }}", Request{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := New(tt.src)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if _, err := tmpl.Render(tt.req); err == nil {
				t.Fatal("Render: no error")
			}
		})
	}
	tmpl, err := New("{{ raise_exception('no tools here') }}")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(Request{})
	var re *RaiseError
	if !errors.As(err, &re) || re.Message != "no tools here" {
		t.Errorf("raise_exception gave %v, want a *RaiseError", err)
	}
}

// TestModelTemplateEdges renders the real template with odd conversations:
// errors are fine, panics are not.
func TestModelTemplateEdges(t *testing.T) {
	tmpl := loadModelTemplate(t)
	tests := []struct {
		name string
		req  Request
	}{
		{"no messages", Request{AddGenerationPrompt: true}},
		{"only tool", Request{Messages: []Message{{Role: "tool", Content: "x"}}}},
		{"tools, no messages", Request{Tools: []json.RawMessage{json.RawMessage(`{}`)}}},
		{"unknown role", Request{Messages: []Message{{Role: "wizard", Content: "x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _ = tmpl.Render(tt.req)
		})
	}
}

func TestSystemOption(t *testing.T) {
	tmpl := loadModelTemplate(t)
	user := Message{Role: "user", Content: "Hi"}
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"prepended", Request{Messages: []Message{user}, System: "Be terse."},
			"<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"},
		{"messages' own system kept", Request{Messages: []Message{{Role: "system", Content: "Own."}, user}, System: "Be terse."},
			"<|im_start|>system\nOwn.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"},
		{"template default", Request{Messages: []Message{user}},
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tmpl.Render(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGlobals(t *testing.T) {
	clock := func() time.Time { return time.Date(2024, 7, 5, 9, 3, 0, 0, time.UTC) }
	tests := []struct {
		src, want string
		req       Request
	}{
		{`{{ strftime_now("%d %b %Y") }}`, "05 Jul 2024", Request{}},
		{`{{ strftime_now("%-d %B %Y %H:%M") }}`, "5 July 2024 09:03", Request{}},
		{`{{ bos_token }}|{{ eos_token }}`, "<s>|</s>", Request{}},
		{`{{ bos_token }}|{{ eos_token }}`, "B|E", Request{BOSToken: "B", EOSToken: "E"}},
		{`{{ tools is none }} {{ documents is none }}`, "True True", Request{}},
		{`{{ enable_thinking }} {{ cfg | tojson }}`, "False {\"z\": 1, \"a\": [true, null, 2.5]}",
			Request{Extra: map[string]any{"enable_thinking": false, "cfg": json.RawMessage(`{"z":1,"a":[true,null,2.5]}`)}}},
		{`{% set ns = namespace(x=1) %}{{ ns.x }}`, "1", Request{}},
	}
	for _, tt := range tests {
		tmpl, err := New(tt.src, WithClock(clock), WithSpecialTokens("<s>", "</s>"))
		if err != nil {
			t.Fatalf("New(%q): %v", tt.src, err)
		}
		got, err := tmpl.Render(tt.req)
		if err != nil {
			t.Fatalf("Render(%q): %v", tt.src, err)
		}
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestTojson(t *testing.T) {
	tests := []struct {
		name, src, json, want string
	}{
		{"order and separators", `{{ x | tojson }}`, `{"b":1,"a":{"d":[1,2],"c":"s"}}`, `{"b": 1, "a": {"d": [1, 2], "c": "s"}}`},
		{"non-ASCII kept, HTML not escaped", `{{ x | tojson }}`, `{"k":"héllo 世界 <a&b> \u2028 😀"}`, "{\"k\": \"héllo 世界 <a&b> \u2028 😀\"}"},
		{"control characters", `{{ x | tojson }}`, `"a\"b\\c\nd\te\u0001\b\f"`, `"a\"b\\c\nd\te\u0001\b\f"`},
		{"floats as Python", `{{ x | tojson }}`, `[1.0, 0.5, 1e-7, 1e16, 123456789.0, -0.0, 2.5e-4, 1e21]`, `[1.0, 0.5, 1e-07, 1e+16, 123456789.0, -0.0, 0.00025, 1e+21]`},
		{"ensure_ascii", `{{ x | tojson(ensure_ascii=true) }}`, `"é😀"`, `"\u00e9\ud83d\ude00"`},
		{"compact separators", `{{ x | tojson(separators=(',', ':')) }}`, `{"a":[1,2]}`, `{"a":[1,2]}`},
		{"sort_keys", `{{ x | tojson(sort_keys=true) }}`, `{"b":1,"a":2}`, `{"a": 2, "b": 1}`},
		{"indent", `{{ x | tojson(indent=2) }}`, `{"a":[1,{}],"b":[]}`, "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}"},
		{"spaces and chains", `{{ x|  tojson|safe }}{{ "| tojson" }}`, `{"a":1}`, `{"a": 1}| tojson`},
		{"inside a statement", `{% set s = x | tojson %}{{ s }}`, `[1]`, `[1]`},
		{"raw block untouched", `{% raw %}{{ x | tojson }}{% endraw %}`, `1`, `{{ x | tojson }}`},
		{"comment untouched", `{# x | tojson #}{{ x|tojson }}`, `"é"`, `"é"`},
		{"dict literal", `{{ {'a': x} | tojson }}`, `"é"`, `{"a": "é"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := New(tt.src)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := tmpl.Render(Request{Extra: map[string]any{"x": json.RawMessage(tt.json)}})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestMessageJSON(t *testing.T) {
	var m Message
	in := `{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}],"name":"n"}`
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	if m.Content != "ab" || m.Name != "n" {
		t.Errorf("got %+v", m)
	}
	if err := json.Unmarshal([]byte(`{"role":"user","content":5}`), &m); err == nil {
		t.Error("numeric content: no error")
	}
	out, err := json.Marshal(ToolCall{ID: "c", Type: "function", Function: FunctionCall{Name: "f", Arguments: `{"a": 1}`}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}}`; string(out) != want {
		t.Errorf("got %s, want %s", out, want)
	}
}

// TestConcurrentRender renders one template from many goroutines (run with
// -race).
func TestConcurrentRender(t *testing.T) {
	tmpl := loadModelTemplate(t)
	prompts := loadRefPrompts(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				p := prompts[(g+i)%len(prompts)]
				if p.Kind != "chat" {
					continue
				}
				got, err := tmpl.Render(Request{Messages: p.Messages, Tools: p.Tools, AddGenerationPrompt: true})
				if err != nil || got != p.Text {
					t.Errorf("%s: concurrent render differs (err %v)", p.Name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
