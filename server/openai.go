package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/constrain"
	"github.com/apr-llm/apr/trace"
)

// chatRequest is POST /v1/chat/completions.
type chatRequest struct {
	Model    string         `json:"model"`
	Messages []chat.Message `json:"messages"`
	genFields
	MaxCompletionTokens *int              `json:"max_completion_tokens"`
	Logprobs            bool              `json:"logprobs"`
	TopLogprobs         *int              `json:"top_logprobs"`
	Tools               []json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage   `json:"tool_choice"`
	ResponseFormat      *responseFormat   `json:"response_format"`
}

// responseFormat is response_format: text, json_object or json_schema.
type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	} `json:"json_schema"`
}

// completionRequest is POST /v1/completions.
type completionRequest struct {
	Model  string          `json:"model"`
	Prompt json.RawMessage `json:"prompt"`
	Suffix *string         `json:"suffix"`
	genFields
	Logprobs *int `json:"logprobs"`
	Echo     bool `json:"echo"`
}

// Usage is the OpenAI usage object.
type Usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func toUsage(u usage) *Usage {
	x := &Usage{PromptTokens: u.prompt, CompletionTokens: u.completion, TotalTokens: u.prompt + u.completion}
	x.PromptTokensDetails.CachedTokens = u.cached
	return x
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// chatPrompt renders the request's conversation with the model's template.
// It returns the prompt, the parsed tools (none under tool_choice "none")
// and the tool choice; when a call is forced the prompt ends with the
// opening <tool_call> marker.
func (s *Server) chatPrompt(req *chatRequest) ([]int, []toolSpec, toolChoice, error) {
	var tc toolChoice
	if len(req.Messages) == 0 {
		return nil, nil, tc, invalid("messages", "messages must not be empty")
	}
	msgs := make([]chat.Message, len(req.Messages))
	for i, m := range req.Messages {
		if !validRoles[m.Role] {
			return nil, nil, tc, invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d]: unknown role %q (want system, user, assistant or tool)", i, m.Role)
		}
		if m.Role == "developer" {
			m.Role = "system"
		}
		msgs[i] = m
	}
	specs := make([]toolSpec, len(req.Tools))
	for i, t := range req.Tools {
		if err := json.Unmarshal(t, &specs[i]); err != nil || specs[i].Function.Name == "" {
			return nil, nil, tc, invalid(fmt.Sprintf("tools[%d]", i), "tools[%d] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", i)
		}
	}
	tc, err := parseToolChoice(req.ToolChoice, specs)
	if err != nil {
		return nil, nil, tc, err
	}
	tools := req.Tools
	if tc.mode == "none" {
		tools, specs = nil, nil
	}
	text, err := s.model.Template.Render(chat.Request{Messages: msgs, Tools: tools, AddGenerationPrompt: true})
	if err != nil {
		return nil, nil, tc, invalid("messages", "chat template: %v", err)
	}
	if tc.forced() {
		text += toolCallPrefix
	}
	return s.model.Tokenizer.Encode(text), specs, tc, nil
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !decodeBody(w, r, &req) {
		return
	}
	prompt, tools, choice, err := s.chatPrompt(&req)
	if err != nil {
		requestError(w, err)
		return
	}
	maxTok := req.MaxCompletionTokens
	if maxTok == nil {
		maxTok = req.MaxTokens
	}
	j, ok := s.startJob(w, r, &req.genFields, prompt, maxTok)
	if !ok {
		return
	}
	if req.TopLogprobs != nil {
		if *req.TopLogprobs < 0 || *req.TopLogprobs > 20 {
			badRequest(w, "top_logprobs", fmt.Sprintf("top_logprobs must be between 0 and 20, got %d", *req.TopLogprobs))
			return
		}
		if !req.Logprobs {
			badRequest(w, "top_logprobs", "top_logprobs needs logprobs: true")
			return
		}
		j.topLogprobs = *req.TopLogprobs
	}
	j.logprobs = req.Logprobs
	if req.ResponseFormat != nil {
		if j.filter, err = s.responseFilter(req.ResponseFormat); err != nil {
			requestError(w, err)
			return
		}
	}
	c := &chatOutput{s: s, id: newID("chatcmpl-"), model: s.cfg.ModelName, created: time.Now().Unix(), tools: len(tools) > 0}
	if choice.forced() {
		if j.filter != nil {
			badRequest(w, "tool_choice", "a forced tool call cannot be combined with response_format "+req.ResponseFormat.Type)
			return
		}
		schema, err := choice.callSchema(tools)
		if err != nil {
			requestError(w, err)
			return
		}
		j.filter = constrain.NewFilter(schema, s.vocab(), s.model.EOS())
		c.open, c.close = toolCallPrefix, toolCallSuffix
	}
	if err := s.sched.submit(j); err != nil {
		submitError(w, err)
		return
	}
	if req.Stream {
		c.stream(w, r, j, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		return
	}
	c.whole(w, r, j)
}

// chatOutput turns a job's events into chat completion responses.
type chatOutput struct {
	s       *Server
	id      string
	model   string
	created int64
	tools   bool
	// open and close wrap the generated text of a forced tool call (its
	// prompt ended with open; the constrained JSON body ends the output).
	open, close string
}

// chatLogprob is one entry of choices[].logprobs.content.
type chatLogprob struct {
	Token       string        `json:"token"`
	Logprob     float64       `json:"logprob"`
	Bytes       []int         `json:"bytes"`
	TopLogprobs []chatLogprob `json:"top_logprobs"`
}

func (s *Server) tokenLogprob(id int, lp float64) chatLogprob {
	b := s.model.Tokenizer.TokenBytes(id)
	ints := make([]int, len(b))
	for i, c := range b {
		ints[i] = int(c)
	}
	return chatLogprob{Token: strings.ToValidUTF8(string(b), string(utf8.RuneError)), Logprob: lp, Bytes: ints, TopLogprobs: []chatLogprob{}}
}

func (s *Server) chatLogprobs(t *tokenInfo) chatLogprob {
	c := s.tokenLogprob(t.id, t.logprob)
	for _, x := range t.top {
		c.TopLogprobs = append(c.TopLogprobs, s.tokenLogprob(x.ID, x.Logprob))
	}
	return c
}

// message builds the assistant message, with tool calls parsed out when the
// request offered tools.
func (c *chatOutput) message(text, finish string) (map[string]any, string) {
	msg := map[string]any{"role": "assistant", "content": text}
	if c.tools {
		if calls, rest, err := chat.ParseToolCalls(text); err == nil && len(calls) > 0 {
			msg["tool_calls"] = calls
			if rest == "" {
				msg["content"] = nil
			} else {
				msg["content"] = rest
			}
			if finish == "stop" {
				finish = "tool_calls"
			}
		}
	}
	return msg, finish
}

func (c *chatOutput) whole(w http.ResponseWriter, r *http.Request, j *job) {
	var text strings.Builder
	var lps []chatLogprob
	for {
		ev, ok := j.next()
		if !ok {
			return
		}
		if ev.err != nil {
			writeError(w, http.StatusInternalServerError, "server_error", "", ev.err.Error())
			return
		}
		text.WriteString(ev.text)
		if ev.token != nil {
			lps = append(lps, c.s.chatLogprobs(ev.token))
		}
		if !ev.done {
			continue
		}
		msg, finish := c.message(c.open+text.String()+c.close, ev.finish)
		choice := map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}
		if j.logprobs {
			choice["logprobs"] = map[string]any{"content": nonNil(lps)}
		}
		out := map[string]any{
			"id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
			"choices": []any{choice}, "usage": toUsage(ev.usage), "system_fingerprint": "apr",
		}
		addTrace(out, j, ev)
		writeJSON(w, http.StatusOK, out)
		return
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (c *chatOutput) chunk(delta map[string]any, finish any, lps []chatLogprob, logprobs bool) map[string]any {
	choice := map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}
	if logprobs && lps != nil {
		choice["logprobs"] = map[string]any{"content": lps}
	}
	return map[string]any{
		"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
		"choices": []any{choice}, "system_fingerprint": "apr",
	}
}

// stream writes the job's output as server-sent chat completion chunks.
// With tools, output that starts like a tool call is held until it ends and
// sent as tool_calls.
func (c *chatOutput) stream(w http.ResponseWriter, r *http.Request, j *job, includeUsage bool) {
	sse := newSSE(w)
	sse.send(c.chunk(map[string]any{"role": "assistant", "content": ""}, nil, nil, false))
	var held strings.Builder
	held.WriteString(c.open)
	holding := c.tools
	var heldLps []chatLogprob
	for {
		ev, ok := j.next()
		if !ok {
			return
		}
		if ev.err != nil {
			sse.send(map[string]any{"error": apiError{Message: ev.err.Error(), Type: "server_error"}})
			return
		}
		var lps []chatLogprob
		if ev.token != nil {
			lps = []chatLogprob{c.s.chatLogprobs(ev.token)}
		}
		text := ev.text
		if holding {
			held.WriteString(text)
			heldLps = append(heldLps, lps...)
			t := strings.TrimLeft(held.String(), " \t\r\n")
			if strings.HasPrefix(t, "<tool_call>") || strings.HasPrefix("<tool_call>", t) {
				if !ev.done {
					continue
				}
				msg, finish := c.message(held.String()+c.close, ev.finish)
				if calls, ok := msg["tool_calls"].([]chat.ToolCall); ok {
					deltas := make([]map[string]any, len(calls))
					for i, tc := range calls {
						deltas[i] = map[string]any{"index": i, "id": tc.ID, "type": "function",
							"function": map[string]any{"name": tc.Function.Name, "arguments": tc.Function.Arguments}}
					}
					sse.send(c.chunk(map[string]any{"tool_calls": deltas}, nil, heldLps, j.logprobs))
					sse.send(c.chunk(map[string]any{}, finish, nil, false))
					c.end(sse, j, ev, includeUsage)
					return
				}
			}
			holding = false
			text, lps = held.String(), heldLps
		}
		if text != "" || lps != nil {
			sse.send(c.chunk(map[string]any{"content": text}, nil, lps, j.logprobs))
		}
		if ev.done {
			sse.send(c.chunk(map[string]any{}, ev.finish, nil, false))
			c.end(sse, j, ev, includeUsage)
			return
		}
	}
}

// end sends the usage chunk when asked for, the trace chunk of a traced
// request, and [DONE].
func (c *chatOutput) end(sse *sseWriter, j *job, ev event, includeUsage bool) {
	if includeUsage {
		sse.send(map[string]any{
			"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
			"choices": []any{}, "usage": toUsage(ev.usage),
		})
	}
	if j.traceLevel != trace.LevelNone {
		sse.send(map[string]any{
			"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
			"choices": []any{}, "trace": traceObject(j, ev.trace),
		})
	}
	sse.done()
}

// completionPrompt reads prompt (a string, a list of one string, or token
// ids) and builds the fill-in-the-middle prompt when suffix is set.
func (s *Server) completionPrompt(req *completionRequest) ([]int, error) {
	raw := bytes.TrimSpace(req.Prompt)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, invalid("prompt", "prompt is required")
	}
	var text string
	var ids []int
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, invalid("prompt", "prompt: %v", err)
		}
	case '[':
		var list []string
		if err := json.Unmarshal(raw, &list); err == nil {
			if len(list) != 1 {
				return nil, invalid("prompt", "prompt lists must hold exactly one string (apr answers one prompt per request), got %d", len(list))
			}
			text = list[0]
		} else if err := json.Unmarshal(raw, &ids); err != nil {
			return nil, invalid("prompt", "prompt must be a string, a list of one string or a list of token ids")
		}
	default:
		return nil, invalid("prompt", "prompt must be a string, a list of one string or a list of token ids")
	}
	vocab := s.model.Config.VocabSize
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return nil, invalid("prompt", "token id %d outside the vocabulary (%d)", id, vocab)
		}
	}
	tok := s.model.Tokenizer
	if req.Suffix != nil {
		if ids != nil {
			return nil, invalid("suffix", "suffix needs a text prompt")
		}
		pre, ok1 := tok.TokenID("<|fim_prefix|>")
		suf, ok2 := tok.TokenID("<|fim_suffix|>")
		mid, ok3 := tok.TokenID("<|fim_middle|>")
		if !ok1 || !ok2 || !ok3 {
			return nil, invalid("suffix", "this model has no fill-in-the-middle tokens")
		}
		ids = append([]int{pre}, tok.Encode(text)...)
		ids = append(ids, suf)
		ids = append(ids, tok.Encode(*req.Suffix)...)
		return append(ids, mid), nil
	}
	if ids == nil {
		ids = tok.Encode(text)
	}
	if len(ids) == 0 {
		return nil, invalid("prompt", "prompt is empty")
	}
	return ids, nil
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if !decodeBody(w, r, &req) {
		return
	}
	prompt, err := s.completionPrompt(&req)
	if err != nil {
		requestError(w, err)
		return
	}
	if req.Echo {
		badRequest(w, "echo", "echo is not supported")
		return
	}
	j, ok := s.startJob(w, r, &req.genFields, prompt, nil)
	if !ok {
		return
	}
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > 20 {
			badRequest(w, "logprobs", fmt.Sprintf("logprobs must be between 0 and 20, got %d", *req.Logprobs))
			return
		}
		j.logprobs, j.topLogprobs = true, *req.Logprobs
	}
	if err := s.sched.submit(j); err != nil {
		submitError(w, err)
		return
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	wrap := func(choice map[string]any, u *Usage) map[string]any {
		out := map[string]any{"id": id, "object": "text_completion", "created": created, "model": s.cfg.ModelName,
			"choices": []any{choice}, "system_fingerprint": "apr"}
		if u != nil {
			out["usage"] = u
		}
		return out
	}
	lp := &completionLogprobs{s: s}
	if req.Stream {
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		sse := newSSE(w)
		for {
			ev, ok := j.next()
			if !ok {
				return
			}
			if ev.err != nil {
				sse.send(map[string]any{"error": apiError{Message: ev.err.Error(), Type: "server_error"}})
				return
			}
			if ev.text != "" || ev.done || ev.token != nil {
				choice := map[string]any{"index": 0, "text": ev.text, "finish_reason": nil, "logprobs": nil}
				if ev.done {
					choice["finish_reason"] = ev.finish
				}
				if j.logprobs && ev.token != nil {
					one := &completionLogprobs{s: s}
					one.add(ev.token, ev.text, 0)
					choice["logprobs"] = one
				}
				sse.send(wrap(choice, nil))
			}
			if ev.done {
				if includeUsage {
					out := wrap(nil, toUsage(ev.usage))
					out["choices"] = []any{}
					sse.send(out)
				}
				if j.traceLevel != trace.LevelNone {
					out := wrap(nil, nil)
					out["choices"], out["trace"] = []any{}, traceObject(j, ev.trace)
					sse.send(out)
				}
				sse.done()
				return
			}
		}
	}
	var text strings.Builder
	for {
		ev, ok := j.next()
		if !ok {
			return
		}
		if ev.err != nil {
			writeError(w, http.StatusInternalServerError, "server_error", "", ev.err.Error())
			return
		}
		if ev.token != nil {
			lp.add(ev.token, ev.text, text.Len())
		}
		text.WriteString(ev.text)
		if ev.done {
			choice := map[string]any{"index": 0, "text": text.String(), "finish_reason": ev.finish, "logprobs": nil}
			if j.logprobs {
				choice["logprobs"] = lp
			}
			out := wrap(choice, toUsage(ev.usage))
			addTrace(out, j, ev)
			writeJSON(w, http.StatusOK, out)
			return
		}
	}
}

// completionLogprobs is the legacy completions logprobs object.
type completionLogprobs struct {
	s             *Server
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

func (l *completionLogprobs) add(t *tokenInfo, _ string, offset int) {
	tok := l.s.model.Tokenizer
	str := func(id int) string {
		return strings.ToValidUTF8(string(tok.TokenBytes(id)), string(utf8.RuneError))
	}
	l.Tokens = append(l.Tokens, str(t.id))
	l.TokenLogprobs = append(l.TokenLogprobs, t.logprob)
	top := map[string]float64{}
	for _, x := range t.top {
		top[str(x.ID)] = x.Logprob
	}
	l.TopLogprobs = append(l.TopLogprobs, top)
	l.TextOffset = append(l.TextOffset, offset)
}

// startJob builds the request's job and its trace recorder (X-Trace-Level);
// on failure it writes the error response and returns false.
func (s *Server) startJob(w http.ResponseWriter, r *http.Request, f *genFields, prompt []int, maxTokens *int) (*job, bool) {
	j, err := s.job(r.Context(), f, prompt, maxTokens)
	if err == nil {
		err = requestTrace(w, r, j)
	}
	if err != nil {
		requestError(w, err)
		return nil, false
	}
	return j, true
}
