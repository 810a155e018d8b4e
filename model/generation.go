package model

import (
	"encoding/json"
	"fmt"
)

// Generation holds a model's default sampling settings, as shipped in
// generation_config.json. Zero values mean "not set".
type Generation struct {
	DoSample      *bool
	Temperature   *float64
	TopK          *int
	TopP          *float64
	MinP          *float64
	RepeatPenalty *float64
	EOSTokenIDs   []int
}

// ParseGenerationConfig reads a Hugging Face generation_config.json.
func ParseGenerationConfig(data []byte) (*Generation, error) {
	var h struct {
		DoSample          *bool           `json:"do_sample"`
		Temperature       *float64        `json:"temperature"`
		TopK              *int            `json:"top_k"`
		TopP              *float64        `json:"top_p"`
		MinP              *float64        `json:"min_p"`
		RepetitionPenalty *float64        `json:"repetition_penalty"`
		EOSTokenID        json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("generation_config.json: %w", err)
	}
	ids, err := ParseTokenIDs(h.EOSTokenID)
	if err != nil {
		return nil, fmt.Errorf("generation_config.json: eos_token_id: %w", err)
	}
	return &Generation{
		DoSample: h.DoSample, Temperature: h.Temperature, TopK: h.TopK, TopP: h.TopP,
		MinP: h.MinP, RepeatPenalty: h.RepetitionPenalty, EOSTokenIDs: ids,
	}, nil
}
