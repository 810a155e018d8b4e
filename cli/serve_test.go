package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/apr-llm/apr/internal/testref"
)

// TestServeCommand runs `apr serve` in process on a free loopback port,
// asks it a question through the official OpenAI client with the API key,
// and stops it as SIGINT would: it must exit cleanly.
func TestServeCommand(t *testing.T) {
	dir := testref.ModelDir(t)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := NewRoot(strings.NewReader(""), io.Discard, pw)
	root.SetArgs([]string{"serve", dir, "--port", "0", "--parallel", "2", "--ctx-size", "512", "--api-key", "k", "-t", "2"})
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(ctx)
		pw.Close()
	}()
	addr := regexp.MustCompile(`on http://(\S+) `)
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if m := addr.FindStringSubmatch(sc.Text()); m != nil {
			base = "http://" + m[1]
			break
		}
	}
	if base == "" {
		t.Fatalf("apr serve printed no address: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
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
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("apr serve after shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("apr serve did not stop")
	}
}
