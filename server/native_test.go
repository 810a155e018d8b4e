package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// decodeOK reads a 200 JSON response into v.
func decodeOK(t testing.TB, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// TestNativeEndpoints checks /tokenize and /detokenize against the
// reference token ids, and /generate and /batch/generate against the greedy
// references; all behind --api-key.
func TestNativeEndpoints(t *testing.T) {
	ts := start(t, Config{Parallel: 4, APIKey: "k"})
	auth := []string{"Authorization", "Bearer k"}
	r := refs(t)
	for _, name := range []string{"raw_unicode", "tools", "raw_fim"} {
		p := r[name]
		body, _ := json.Marshal(map[string]any{"content": p.Text})
		var tok struct{ Tokens []int }
		decodeOK(t, ts.post(t, context.Background(), "/tokenize", string(body), auth...), &tok)
		if !slices.Equal(tok.Tokens, p.TokenIDs) {
			t.Fatalf("/tokenize %s: %v, reference %v", name, tok.Tokens, p.TokenIDs)
		}
		body, _ = json.Marshal(map[string]any{"tokens": p.TokenIDs})
		var detok struct{ Content string }
		decodeOK(t, ts.post(t, context.Background(), "/detokenize", string(body), auth...), &detok)
		if detok.Content != p.Text {
			t.Fatalf("/detokenize %s: %q, want %q", name, detok.Content, p.Text)
		}
	}
	names := []string{"raw_python", "raw_go", "raw_fim", "two_plus_two"}
	var prompts []string
	for _, n := range names {
		prompts = append(prompts, r[n].Text)
	}
	body, _ := json.Marshal(map[string]any{"prompts": prompts, "max_tokens": 10, "temperature": 0})
	var batch struct{ Results []generateResult }
	decodeOK(t, ts.post(t, context.Background(), "/batch/generate", string(body), auth...), &batch)
	if len(batch.Results) != len(names) {
		t.Fatalf("%d results for %d prompts", len(batch.Results), len(names))
	}
	for i, n := range names {
		want, _, k := expected(t, r[n], 10)
		got := batch.Results[i]
		if got.Text != want || got.Usage == nil || got.Usage.CompletionTokens != k {
			t.Fatalf("/batch/generate %s: %+v, want %q in %d tokens", n, got, want, k)
		}
	}
	body, _ = json.Marshal(map[string]any{"prompt": r["raw_go"].Text, "max_tokens": 8, "temperature": 0})
	var one generateResult
	decodeOK(t, ts.post(t, context.Background(), "/generate", string(body), auth...), &one)
	if want, _, _ := expected(t, r["raw_go"], 8); one.Text != want || one.FinishReason != "length" {
		t.Fatalf("/generate: %+v, want %q (length)", one, want)
	}
}

// TestModelsAndMetrics checks /v1/models through the official client and
// that /metrics counts what a request did.
func TestModelsAndMetrics(t *testing.T) {
	ts := start(t, Config{Parallel: 1, ModelName: "tiny-coder", CtxSize: 256})
	client := ts.openai()
	page, err := client.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != "tiny-coder" {
		t.Fatalf("models %+v, want tiny-coder", page.Data)
	}
	p := refs(t)["two_plus_two"]
	params, opts := chatParams(t, p)
	if _, err := client.Chat.Completions.New(context.Background(), params, opts...); err != nil {
		t.Fatal(err)
	}
	res, err := ts.client.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	text := string(b)
	_, _, n := expected(t, p, 0)
	for _, want := range []string{
		`apr_requests_total{code="200",endpoint="/v1/chat/completions"} 1`,
		"apr_prompt_tokens_total " + itoa(len(p.TokenIDs)),
		"apr_generated_tokens_total " + itoa(n),
		"apr_queue_depth 0",
		"apr_active_sequences 0",
		"apr_time_to_first_token_seconds_count 1",
		"apr_decode_tokens_per_second_count 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
