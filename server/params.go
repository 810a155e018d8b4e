package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"

	"github.com/apr-llm/apr/sample"
)

// genFields are the generation fields common to the OpenAI chat and
// completions requests (and apr's native /generate).
type genFields struct {
	MaxTokens         *int     `json:"max_tokens"`
	Temperature       *float64 `json:"temperature"`
	TopP              *float64 `json:"top_p"`
	TopK              *int     `json:"top_k"`
	MinP              *float64 `json:"min_p"`
	Seed              *int64   `json:"seed"`
	Stop              stopList `json:"stop"`
	PresencePenalty   float64  `json:"presence_penalty"`
	FrequencyPenalty  float64  `json:"frequency_penalty"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	N                 *int     `json:"n"`
	Stream            bool     `json:"stream"`
	StreamOptions     *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// stopList is "stop": a string, a list of strings or null.
type stopList []string

// UnmarshalJSON accepts a string or a list of strings.
func (s *stopList) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*s = nil
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		var one string
		if err := json.Unmarshal(data, &one); err != nil {
			return err
		}
		*s = stopList{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return errors.New("stop must be a string or a list of strings")
	}
	*s = list
	return nil
}

// paramError is a request field with an invalid value.
type paramError struct{ param, msg string }

func (e *paramError) Error() string { return e.msg }

func invalid(param, format string, args ...any) error {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

// job builds the scheduler's job for prompt from the fields, validating
// their ranges. Unset temperature, top_p, top_k and min_p take the model's
// generation_config; the repetition penalty applies only when the request
// sets repetition_penalty (as in llama.cpp's server), so that temperature 0
// is plain greedy decoding.
func (s *Server) job(ctx context.Context, f *genFields, prompt []int, maxTokens *int) (*job, error) {
	if maxTokens == nil {
		maxTokens = f.MaxTokens
	}
	if f.N != nil && *f.N != 1 {
		return nil, invalid("n", "n must be 1 (apr generates one choice per request)")
	}
	if maxTokens != nil && *maxTokens < 1 {
		return nil, invalid("max_tokens", "max_tokens must be at least 1, got %d", *maxTokens)
	}
	gen := s.model.Generation
	p := sample.Params{Temperature: 1, RepeatLastN: -1}
	if gen.Temperature != nil {
		p.Temperature = *gen.Temperature
		if gen.DoSample != nil && !*gen.DoSample {
			p.Temperature = 0
		}
	}
	if gen.TopK != nil {
		p.TopK = *gen.TopK
	}
	if gen.TopP != nil {
		p.TopP = *gen.TopP
	}
	if gen.MinP != nil {
		p.MinP = *gen.MinP
	}
	checks := []struct {
		name   string
		v      *float64
		lo, hi float64
		dst    *float64
	}{
		{"temperature", f.Temperature, 0, 2, &p.Temperature},
		{"top_p", f.TopP, 0, 1, &p.TopP},
		{"min_p", f.MinP, 0, 1, &p.MinP},
		{"repetition_penalty", f.RepetitionPenalty, 0, 10, &p.RepeatPenalty},
	}
	for _, c := range checks {
		if c.v == nil {
			continue
		}
		if math.IsNaN(*c.v) || *c.v < c.lo || *c.v > c.hi {
			return nil, invalid(c.name, "%s must be between %g and %g, got %g", c.name, c.lo, c.hi, *c.v)
		}
		*c.dst = *c.v
	}
	if f.TopK != nil {
		if *f.TopK < 0 {
			return nil, invalid("top_k", "top_k must not be negative, got %d", *f.TopK)
		}
		p.TopK = *f.TopK
	}
	for _, v := range []struct {
		name string
		x    float64
	}{{"presence_penalty", f.PresencePenalty}, {"frequency_penalty", f.FrequencyPenalty}} {
		if math.IsNaN(v.x) || v.x < -2 || v.x > 2 {
			return nil, invalid(v.name, "%s must be between -2 and 2, got %g", v.name, v.x)
		}
	}
	if len(f.Stop) > 16 {
		return nil, invalid("stop", "at most 16 stop sequences, got %d", len(f.Stop))
	}
	if f.Seed != nil {
		p.Seed = uint64(*f.Seed)
	} else {
		p.Seed = rand.Uint64()
	}
	j := &job{
		ctx: ctx, prompt: prompt, sampler: sample.New(p), stop: f.Stop,
		presence: f.PresencePenalty, frequency: f.FrequencyPenalty,
	}
	if maxTokens != nil {
		j.maxTokens = *maxTokens
	}
	return j, nil
}

// requestError writes err as the response: a paramError as a 400 naming
// the field, a scheduler refusal with its status.
func requestError(w http.ResponseWriter, err error) {
	var pe *paramError
	if errors.As(err, &pe) {
		badRequest(w, pe.param, pe.msg)
		return
	}
	submitError(w, err)
}
