package cli

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/apr-llm/apr/internal/testref"
)

// TestServeCommand runs `apr serve` in process on a free loopback port,
// asks it a question through the official OpenAI client with the API key,
// and stops it as SIGINT would: it must exit cleanly.
func TestServeCommand(t *testing.T) {
	dir := testref.ModelDir(t)
	ctx := context.Background()
	base, stop := startServe(t, dir, "--parallel", "2", "--ctx-size", "512", "--api-key", "k", "-t", "2")
	defer stop()
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:       "qwen2-tiny-coder",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is 2+2? Answer with just the number.")},
		Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != "4" || res.Model != "qwen2-tiny-coder" {
		t.Fatalf("answer %q from model %q, want 4 from qwen2-tiny-coder", got, res.Model)
	}
	noKey, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	noKey.Body.Close()
	if noKey.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the key: status %d, want 401", noKey.StatusCode)
	}
}
