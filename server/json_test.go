package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// TestResponseFormatJSON asks the tiny model (which was never trained to
// write JSON) for JSON through the official client: constrained decoding
// must still give a document that parses, of the schema's shape.
func TestResponseFormatJSON(t *testing.T) {
	ts := start(t, Config{Parallel: 2})
	client := ts.openai()
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"city":  map[string]any{"type": "string"},
			"temp":  map[string]any{"type": "integer"},
			"unit":  map[string]any{"enum": []string{"celsius", "fahrenheit"}},
			"sunny": map[string]any{"type": "boolean"},
		},
		"required":             []string{"city", "temp", "unit", "sunny"},
		"additionalProperties": false,
	}
	cases := []struct {
		name   string
		format openai.ChatCompletionNewParamsResponseFormatUnion
		check  func(t *testing.T, content string)
	}{
		{"json_schema", openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "weather", Schema: schema, Strict: openai.Bool(true)},
		}}, func(t *testing.T, content string) {
			var w struct {
				City  *string `json:"city"`
				Temp  *int    `json:"temp"`
				Unit  *string `json:"unit"`
				Sunny *bool   `json:"sunny"`
			}
			dec := json.NewDecoder(strings.NewReader(content))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&w); err != nil {
				t.Fatalf("%q does not parse into the schema: %v", content, err)
			}
			if w.City == nil || w.Temp == nil || w.Unit == nil || w.Sunny == nil {
				t.Fatalf("%q lacks a required property", content)
			}
			if *w.Unit != "celsius" && *w.Unit != "fahrenheit" {
				t.Fatalf("unit %q outside the enum", *w.Unit)
			}
		}},
		{"json_object", openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}},
			func(t *testing.T, content string) {
				var v map[string]any
				if err := json.Unmarshal([]byte(content), &v); err != nil {
					t.Fatalf("%q is not a JSON object: %v", content, err)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model:          "tiny",
				Messages:       []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris? Answer in JSON.")},
				Temperature:    openai.Float(0),
				MaxTokens:      openai.Int(200),
				ResponseFormat: c.format,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Choices[0].FinishReason != "stop" {
				t.Fatalf("finish %q: the document did not end within 200 tokens: %q", res.Choices[0].FinishReason, res.Choices[0].Message.Content)
			}
			c.check(t, res.Choices[0].Message.Content)
		})
	}
}
