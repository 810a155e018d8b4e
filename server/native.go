package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// tokenizeRequest is POST /tokenize (llama.cpp server's shape).
type tokenizeRequest struct {
	Content    *string `json:"content"`
	WithPieces bool    `json:"with_pieces"`
}

func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	var req tokenizeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Content == nil {
		badRequest(w, "content", "content is required")
		return
	}
	tok := s.model.Tokenizer
	ids := tok.Encode(*req.Content)
	if !req.WithPieces {
		writeJSON(w, http.StatusOK, map[string]any{"tokens": nonNil(ids)})
		return
	}
	pieces := make([]map[string]any, len(ids))
	for i, id := range ids {
		pieces[i] = map[string]any{"id": id, "piece": tok.Decode([]int{id})}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": pieces})
}

// detokenizeRequest is POST /detokenize.
type detokenizeRequest struct {
	Tokens []int `json:"tokens"`
}

func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) {
	var req detokenizeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	vocab := s.model.Config.VocabSize
	for _, id := range req.Tokens {
		if id < 0 || id >= vocab {
			badRequest(w, "tokens", fmt.Sprintf("token id %d outside the vocabulary (%d)", id, vocab))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"content": s.model.Tokenizer.Decode(req.Tokens)})
}

// generateRequest is POST /generate: a raw prompt, no template.
type generateRequest struct {
	Prompt string `json:"prompt"`
	genFields
}

// generateResult is one native generation's answer.
type generateResult struct {
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
	Usage        *Usage `json:"usage"`
	Error        string `json:"error,omitempty"`
}

// runText submits a raw prompt and waits for the whole answer.
func (s *Server) runText(ctx context.Context, prompt string, f *genFields) (*generateResult, error) {
	ids := s.model.Tokenizer.Encode(prompt)
	if len(ids) == 0 {
		return nil, invalid("prompt", "prompt is empty")
	}
	j, err := s.job(ctx, f, ids, nil)
	if err != nil {
		return nil, err
	}
	if err := s.sched.submit(j); err != nil {
		return nil, err
	}
	var text strings.Builder
	for {
		ev, ok := j.next()
		if !ok {
			return nil, ctx.Err()
		}
		if ev.err != nil {
			return nil, ev.err
		}
		text.WriteString(ev.text)
		if ev.done {
			return &generateResult{Text: text.String(), FinishReason: ev.finish, Usage: toUsage(ev.usage)}, nil
		}
	}
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request) {
	var req generateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Stream {
		badRequest(w, "stream", "/generate does not stream; use /v1/completions")
		return
	}
	res, err := s.runText(r.Context(), req.Prompt, &req.genFields)
	if err != nil {
		if r.Context().Err() == nil {
			requestError(w, err)
		}
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// batchRequest is POST /batch/generate: several raw prompts with the same
// settings, run concurrently in the batch.
type batchRequest struct {
	Prompts []string `json:"prompts"`
	genFields
}

func (s *Server) batchGenerate(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if len(req.Prompts) == 0 {
		badRequest(w, "prompts", "prompts must not be empty")
		return
	}
	if len(req.Prompts) > s.cfg.Parallel+s.cfg.QueueSize {
		badRequest(w, "prompts", fmt.Sprintf("at most %d prompts per batch (--parallel + queue)", s.cfg.Parallel+s.cfg.QueueSize))
		return
	}
	results := make([]generateResult, len(req.Prompts))
	done := make(chan struct{}, len(req.Prompts))
	for i, p := range req.Prompts {
		go func() {
			defer func() { done <- struct{}{} }()
			f := req.genFields
			res, err := s.runText(r.Context(), p, &f)
			if err != nil {
				results[i] = generateResult{Error: err.Error()}
				return
			}
			results[i] = *res
		}()
	}
	for range req.Prompts {
		<-done
	}
	if r.Context().Err() != nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}
