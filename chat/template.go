package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// chatMLSource is the template used when a model ships none: Hugging Face's
// ChatML default.
const chatMLSource = "{%- for message in messages %}" +
	"{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}" +
	"{%- endfor %}" +
	"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"

// tojsonName is the name under which our tojson filter reaches templates: the
// engine's built-in filters cannot be replaced, so the source is rewritten to
// call this one.
const tojsonName = "__apr_tojson"

// Template is a parsed chat template. It is safe for concurrent use.
type Template struct {
	source   string
	main     *jinja.Template
	toolUse  *jinja.Template // optional; used for requests with tools
	toolSrc  string
	bos, eos string
	now      func() time.Time
}

// Option configures a Template made by New.
type Option func(*options)

type options struct {
	toolUse  *string
	bos, eos string
	now      func() time.Time
}

// WithToolUse adds a second template used for requests that carry tools (the
// "tool_use" entry of a Hugging Face template list).
func WithToolUse(source string) Option {
	return func(o *options) { o.toolUse = &source }
}

// WithSpecialTokens sets the bos_token and eos_token the template sees when a
// Request leaves them empty.
func WithSpecialTokens(bos, eos string) Option {
	return func(o *options) { o.bos, o.eos = bos, eos }
}

// WithClock sets the clock behind strftime_now (time.Now by default).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Request is what a template renders.
type Request struct {
	// Messages is the conversation.
	Messages []Message
	// Tools are OpenAI tool objects as JSON; their key order is kept.
	Tools []json.RawMessage
	// AddGenerationPrompt ends the prompt with the opening of an assistant turn.
	AddGenerationPrompt bool
	// System, when not empty, is prepended as a system message if Messages
	// have none.
	System string
	// BOSToken and EOSToken override the template's bos_token and eos_token.
	BOSToken, EOSToken string
	// Extra holds further template variables (enable_thinking and the like).
	// Values may be json.RawMessage (key order kept), strings, numbers,
	// booleans, []any and map[string]any.
	Extra map[string]any
}

// New parses a Jinja chat template.
func New(source string, opts ...Option) (*Template, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	main, err := compile(source)
	if err != nil {
		return nil, fmt.Errorf("chat: parsing template: %w", err)
	}
	t := &Template{source: source, main: main, bos: o.bos, eos: o.eos, now: o.now}
	if o.toolUse != nil {
		if t.toolUse, err = compile(*o.toolUse); err != nil {
			return nil, fmt.Errorf("chat: parsing tool_use template: %w", err)
		}
		t.toolSrc = *o.toolUse
	}
	if t.now == nil {
		t.now = time.Now
	}
	return t, nil
}

// compile parses source with our tojson filter in place of the engine's,
// turning a panic of the engine into an error.
func compile(source string) (tmpl *jinja.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			tmpl, err = nil, fmt.Errorf("template engine panicked: %v", r)
		}
	}()
	return jinja.Compile(rewriteTojson(source))
}

// ChatML returns the ChatML template (<|im_start|>role\ncontent<|im_end|>\n
// per message), the fallback for models without a template.
func ChatML() *Template {
	t, err := New(chatMLSource)
	if err != nil {
		panic("chat: built-in ChatML template: " + err.Error())
	}
	return t
}

// FromSource parses a template found in model metadata (a GGUF's
// tokenizer.chat_template, say); an empty source gives ChatML.
func FromSource(src string, opts ...Option) (*Template, error) {
	if strings.TrimSpace(src) == "" {
		src = chatMLSource
	}
	return New(src, opts...)
}

// Source returns the template's Jinja source as given.
func (t *Template) Source() string { return t.source }

// LoadDir reads the chat template of a Hugging Face model folder:
// chat_template.jinja if present, else chat_template.json, else the
// chat_template of tokenizer_config.json (a string, or a list of {name,
// template} from which "default" is used and "tool_use" kept for requests with
// tools), else ChatML. bos_token and eos_token come from tokenizer_config.json.
func LoadDir(dir string) (*Template, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
	}
	haveCfg := false
	if data, err := os.ReadFile(cfgPath); err == nil {
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("chat: %s: %w", cfgPath, err)
		}
		haveCfg = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("chat: %w", err)
	}
	opts := []Option{WithSpecialTokens(tokenText(cfg.BOS), tokenText(cfg.EOS))}

	jinjaPath := filepath.Join(dir, "chat_template.jinja")
	if data, err := os.ReadFile(jinjaPath); err == nil {
		t, err := New(string(data), opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", jinjaPath, err)
		}
		return t, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("chat: %w", err)
	}

	jsonPath := filepath.Join(dir, "chat_template.json")
	if data, err := os.ReadFile(jsonPath); err == nil {
		var ct struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		if err := json.Unmarshal(data, &ct); err != nil {
			return nil, fmt.Errorf("chat: %s: %w", jsonPath, err)
		}
		t, err := fromConfigField(ct.ChatTemplate, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", jsonPath, err)
		}
		if t != nil {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("chat: %w", err)
	}

	if haveCfg {
		t, err := fromConfigField(cfg.ChatTemplate, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
		if t != nil {
			return t, nil
		}
	}
	return FromSource("", opts...)
}

// fromConfigField parses a chat_template field: absent or null (nil, nil), a
// string, or a list of named templates.
func fromConfigField(field json.RawMessage, opts []Option) (*Template, error) {
	s := strings.TrimSpace(string(field))
	if s == "" || s == "null" {
		return nil, nil
	}
	if s[0] == '"' {
		var src string
		if err := json.Unmarshal(field, &src); err != nil {
			return nil, fmt.Errorf("chat: chat_template: %w", err)
		}
		return New(src, opts...)
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(field, &list); err != nil {
		return nil, fmt.Errorf("chat: chat_template is neither a string nor a list of {name, template}: %w", err)
	}
	named := make(map[string]string, len(list))
	for _, e := range list {
		named[e.Name] = e.Template
	}
	src, ok := named["default"]
	if !ok {
		if len(list) != 1 {
			return nil, errors.New(`chat: chat_template list has no "default" entry`)
		}
		src = list[0].Template
	}
	if tu, ok := named["tool_use"]; ok {
		opts = append(opts, WithToolUse(tu))
	}
	return New(src, opts...)
}

// tokenText reads a special token given as a string or as {"content": ...}.
func tokenText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Content
	}
	return ""
}

// RaiseError is the error a template's raise_exception call produces.
type RaiseError struct {
	Message string
}

func (e *RaiseError) Error() string { return "template raised an exception: " + e.Message }

// Render renders the request into prompt text.
func (t *Template) Render(r Request) (out string, err error) {
	data, err := t.data(r)
	if err != nil {
		return "", err
	}
	tmpl := t.main
	if len(r.Tools) > 0 && t.toolUse != nil {
		tmpl = t.toolUse
	}
	defer func() {
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("chat: rendering template: template engine panicked: %v", p)
		}
	}()
	out, err = tmpl.RenderValues(data)
	if err != nil {
		return "", fmt.Errorf("chat: rendering template: %w", err)
	}
	return out, nil
}

// data builds the variables a template sees, as Hugging Face passes them.
func (t *Template) data(r Request) (map[string]jinja.Value, error) {
	msgs := r.Messages
	if r.System != "" && !hasSystem(msgs) {
		msgs = append([]Message{{Role: "system", Content: r.System}}, msgs...)
	}
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		v, err := messageValue(m)
		if err != nil {
			return nil, fmt.Errorf("chat: message %d: %w", i, err)
		}
		list[i] = v
	}
	tools := jinja.None()
	if len(r.Tools) > 0 {
		items := make([]jinja.Value, len(r.Tools))
		for i, raw := range r.Tools {
			v, err := jsonValue(raw)
			if err != nil {
				return nil, fmt.Errorf("chat: tool %d: %w", i, err)
			}
			items[i] = v
		}
		tools = jinja.NewList(items)
	}
	bos, eos := r.BOSToken, r.EOSToken
	if bos == "" {
		bos = t.bos
	}
	if eos == "" {
		eos = t.eos
	}
	data := make(map[string]jinja.Value, len(r.Extra)+10)
	for k, v := range r.Extra {
		val, err := goValue(v)
		if err != nil {
			return nil, fmt.Errorf("chat: template variable %q: %w", k, err)
		}
		data[k] = val
	}
	data["messages"] = jinja.NewList(list)
	data["tools"] = tools
	data["documents"] = jinja.None()
	data["add_generation_prompt"] = jinja.NewBool(r.AddGenerationPrompt)
	data["bos_token"] = jinja.NewString(bos)
	data["eos_token"] = jinja.NewString(eos)
	data["raise_exception"] = jinja.NewCallable("raise_exception", raiseException)
	data["strftime_now"] = jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		if len(args) != 1 || !args[0].IsString() {
			return jinja.Undefined(), errors.New("strftime_now: expected one format string")
		}
		return jinja.NewString(strftime(t.now(), args[0].AsString())), nil
	})
	data[tojsonName] = jinja.NewCallable("tojson", tojsonFilter)
	return data, nil
}

func raiseException(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	msg := ""
	if len(args) > 0 {
		if args[0].IsString() {
			msg = args[0].AsString()
		} else {
			msg = args[0].String()
		}
	}
	return jinja.Undefined(), &RaiseError{Message: msg}
}

func hasSystem(msgs []Message) bool {
	for _, m := range msgs {
		if m.Role == "system" {
			return true
		}
	}
	return false
}

// messageValue converts a message into the dict a template reads. Optional
// fields appear only when set, so `is defined` tests behave as with
// Hugging Face's request dicts.
func messageValue(m Message) (jinja.Value, error) {
	v := jinja.NewDict()
	d := v.AsDict()
	d.Set("role", jinja.NewString(m.Role))
	d.Set("content", jinja.NewString(m.Content))
	if m.Name != "" {
		d.Set("name", jinja.NewString(m.Name))
	}
	if m.ToolCallID != "" {
		d.Set("tool_call_id", jinja.NewString(m.ToolCallID))
	}
	if len(m.ToolCalls) > 0 {
		calls := make([]jinja.Value, len(m.ToolCalls))
		for i, tc := range m.ToolCalls {
			cv := jinja.NewDict()
			c := cv.AsDict()
			if tc.ID != "" {
				c.Set("id", jinja.NewString(tc.ID))
			}
			typ := tc.Type
			if typ == "" {
				typ = "function"
			}
			c.Set("type", jinja.NewString(typ))
			fv := jinja.NewDict()
			f := fv.AsDict()
			f.Set("name", jinja.NewString(tc.Function.Name))
			f.Set("arguments", argumentsValue(tc.Function.Arguments))
			c.Set("function", fv)
			calls[i] = cv
		}
		d.Set("tool_calls", jinja.NewList(calls))
	}
	return v, nil
}

// argumentsValue gives templates the arguments as a JSON object (what
// templates that apply tojson expect) when the text holds one, else as text.
func argumentsValue(args string) jinja.Value {
	s := strings.TrimSpace(args)
	if strings.HasPrefix(s, "{") {
		if v, err := jsonValue([]byte(s)); err == nil {
			return v
		}
	}
	return jinja.NewString(args)
}

// Patterns for {% raw %} blocks and tojson filters in template sources.
var (
	rawStart = regexp.MustCompile(`^\{%[-+]?\s*raw\s*[-+]?%\}`)
	rawEnd   = regexp.MustCompile(`\{%[-+]?\s*endraw\s*[-+]?%\}`)
	pipeJSON = regexp.MustCompile(`^\|\s*tojson\b`)
)

// rewriteTojson renames the tojson filter inside the expression and statement
// tags of a template source (leaving text, comments, raw blocks and string
// literals alone) so that our Python-compatible filter runs instead of the
// engine's.
func rewriteTojson(src string) string {
	if !strings.Contains(src, "tojson") {
		return src
	}
	var sb strings.Builder
	sb.Grow(len(src) + 64)
	i := 0
	for i < len(src) {
		j := strings.IndexByte(src[i:], '{')
		if j < 0 || i+j+1 >= len(src) {
			sb.WriteString(src[i:])
			break
		}
		j += i
		sb.WriteString(src[i:j])
		switch src[j+1] {
		case '#':
			end := strings.Index(src[j+2:], "#}")
			if end < 0 {
				sb.WriteString(src[j:])
				return sb.String()
			}
			end += j + 4
			sb.WriteString(src[j:end])
			i = end
		case '%', '{':
			if loc := rawStart.FindStringIndex(src[j:]); loc != nil {
				endLoc := rawEnd.FindStringIndex(src[j+loc[1]:])
				if endLoc == nil {
					sb.WriteString(src[j:])
					return sb.String()
				}
				end := j + loc[1] + endLoc[1]
				sb.WriteString(src[j:end])
				i = end
				continue
			}
			i = rewriteTag(&sb, src, j)
		default:
			sb.WriteByte('{')
			i = j + 1
		}
	}
	return sb.String()
}

// rewriteTag copies the tag starting at src[start] ("{{" or "{%") up to and
// including its close, renaming tojson filters, and returns the index after it.
func rewriteTag(sb *strings.Builder, src string, start int) int {
	closer := byte('}')
	if src[start+1] == '%' {
		closer = '%'
	}
	sb.WriteString(src[start : start+2])
	i := start + 2
	depth := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\'' || c == '"':
			k := i + 1
			for k < len(src) && src[k] != c {
				if src[k] == '\\' {
					k++
				}
				k++
			}
			k = min(k+1, len(src))
			sb.WriteString(src[i:k])
			i = k
			continue
		case c == '|':
			if loc := pipeJSON.FindStringIndex(src[i:]); loc != nil {
				m := src[i : i+loc[1]]
				sb.WriteString(strings.TrimSuffix(m, "tojson") + tojsonName)
				i += loc[1]
				continue
			}
		case c == '(' || c == '[' || c == '{':
			depth++
		case (c == ')' || c == ']' || c == '}') && depth > 0:
			depth--
		case c == closer && depth == 0 && i+1 < len(src) && src[i+1] == '}':
			sb.WriteString(src[i : i+2])
			return i + 2
		}
		sb.WriteByte(c)
		i++
	}
	return i
}

// strftime formats t with a Python strftime format.
func strftime(t time.Time, format string) string {
	var sb strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			sb.WriteByte(c)
			continue
		}
		i++
		pad := true
		if format[i] == '-' && i+1 < len(format) {
			pad = false
			i++
		}
		num := func(n, width int) {
			if pad {
				fmt.Fprintf(&sb, "%0*d", width, n)
			} else {
				fmt.Fprintf(&sb, "%d", n)
			}
		}
		switch format[i] {
		case 'Y':
			fmt.Fprintf(&sb, "%d", t.Year())
		case 'y':
			num(t.Year()%100, 2)
		case 'm':
			num(int(t.Month()), 2)
		case 'd':
			num(t.Day(), 2)
		case 'e':
			fmt.Fprintf(&sb, "%2d", t.Day())
		case 'H':
			num(t.Hour(), 2)
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			num(h, 2)
		case 'M':
			num(t.Minute(), 2)
		case 'S':
			num(t.Second(), 2)
		case 'f':
			fmt.Fprintf(&sb, "%06d", t.Nanosecond()/1000)
		case 'j':
			num(t.YearDay(), 3)
		case 'p':
			sb.WriteString(t.Format("PM"))
		case 'b', 'h':
			sb.WriteString(t.Format("Jan"))
		case 'B':
			sb.WriteString(t.Format("January"))
		case 'a':
			sb.WriteString(t.Format("Mon"))
		case 'A':
			sb.WriteString(t.Format("Monday"))
		case 'w':
			fmt.Fprintf(&sb, "%d", int(t.Weekday()))
		case 'Z':
			sb.WriteString(t.Format("MST"))
		case 'z':
			sb.WriteString(t.Format("-0700"))
		case 'F':
			sb.WriteString(t.Format("2006-01-02"))
		case 'T':
			sb.WriteString(t.Format("15:04:05"))
		case '%':
			sb.WriteByte('%')
		default:
			sb.WriteByte('%')
			if !pad {
				sb.WriteByte('-')
			}
			sb.WriteByte(format[i])
		}
	}
	return sb.String()
}
