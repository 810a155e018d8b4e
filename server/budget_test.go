package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// TestParseBytes lists the memory sizes --kv-budget accepts and refuses.
func TestParseBytes(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "", want: 0},
		{in: "0", want: 0},
		{in: "512", want: 512 << 20},
		{in: "512MiB", want: 512 << 20},
		{in: "512mib", want: 512 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "2G", want: 2 << 30},
		{in: "800MB", want: 800e6},
		{in: "64 KiB", want: 64 << 10},
		{in: "4096B", want: 4096},
		{in: "-1MiB", wantErr: true},
		{in: "lots", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "1e30TiB", wantErr: true},
	} {
		got, err := ParseBytes(c.in)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}

// TestKVBudget sends four raw completions at once to servers whose KV
// budget holds one, two or all four of their caches: no more sequences run
// at once than fit, the caches never exceed the budget, the context is cut
// to the budget, and every answer is still the greedy reference.
func TestKVBudget(t *testing.T) {
	_, eng := tiny(t)
	pos := int64(eng.NewSequence(1).CacheBytes())
	names := []string{"raw_python", "raw_go", "raw_unicode", "raw_fim"}
	const maxTok = 20 // each request's cache: prompt + 20 <= 64 positions
	cases := []struct {
		name       string
		positions  int64 // the budget in token positions
		wantCtx    int
		wantActive int64
	}{
		{name: "one cache", positions: 64, wantCtx: 64, wantActive: 1},
		{name: "two caches", positions: 128 + 10, wantCtx: 128, wantActive: 2},
		{name: "roomy", positions: 1000, wantCtx: 128, wantActive: 4},
	}
	r := refs(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			budget := c.positions * pos
			ts := start(t, Config{Parallel: 4, CtxSize: 128, KVBudget: budget})
			sc := ts.Scheduler()
			if sc.Context() != c.wantCtx || sc.KVBudget() != budget {
				t.Fatalf("context %d, budget %d; want %d, %d", sc.Context(), sc.KVBudget(), c.wantCtx, budget)
			}
			client := ts.openai()
			var wg sync.WaitGroup
			errs := make([]error, len(names))
			for i, n := range names {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := r[n]
					res, err := client.Completions.New(context.Background(), openai.CompletionNewParams{
						Model: "tiny", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(p.Text)},
						MaxTokens: openai.Int(maxTok), Temperature: openai.Float(0),
					})
					if err != nil {
						errs[i] = err
						return
					}
					if want, _, _ := expected(t, p, maxTok); res.Choices[0].Text != want {
						errs[i] = fmt.Errorf("%s: %q, reference %q", n, res.Choices[0].Text, want)
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if peak := sc.peakKV.Load(); peak > budget || peak == 0 {
				t.Fatalf("KV caches peaked at %d bytes, budget %d", peak, budget)
			}
			t.Logf("%d sequences at once, KV peak %d of %d bytes", sc.peakActive.Load(), sc.peakKV.Load(), budget)
			if a := sc.peakActive.Load(); a > c.wantActive || a < 1 {
				t.Fatalf("%d sequences ran at once, the budget holds %d", a, c.wantActive)
			}
		})
	}
}

// TestKVBudgetQueue503: while one request holds the whole budget, the next
// waits (counted in the queue) and the one after gets 503; the waiting one
// runs once the first ends.
func TestKVBudgetQueue503(t *testing.T) {
	_, eng := tiny(t)
	pos := int64(eng.NewSequence(1).CacheBytes())
	// The first stream's cache takes the whole budget (its tokens pass the
	// context) and it decodes ~500 steps, so it holds the budget for the
	// whole test: with a context of 64 it ended after ~60 steps, and a
	// loaded machine let it finish before the third request (CI run of
	// 2026-11-26: status 200).
	ts := start(t, Config{Parallel: 4, QueueSize: 1, CtxSize: 512, KVBudget: 512 * pos})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := ts.longStreamN(t, ctx, 1000)
	waited := make(chan error, 1)
	go func() {
		res := ts.post(t, context.Background(), "/v1/completions", `{"prompt": "x", "max_tokens": 2, "temperature": 0}`)
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			waited <- fmt.Errorf("the waiting request got status %d", res.StatusCode)
			return
		}
		waited <- nil
	}()
	deadline := time.Now().Add(10 * time.Second)
	for ts.sched.nWaiting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second request never waited for KV memory")
		}
		time.Sleep(time.Millisecond)
	}
	if a := ts.sched.Active(); a != 1 {
		t.Fatalf("%d sequences run, the budget holds 1", a)
	}
	res := ts.post(t, context.Background(), "/v1/completions", `{"prompt": "y", "max_tokens": 2}`)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 while the budget is full and a request waits", res.StatusCode)
	}
	checkErrorShape(t, res, "server_error")
	res.Body.Close()
	cancel()
	first.Body.Close()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
}

// TestKVBudgetInvalid: a budget that holds too few positions, or a
// negative one, is refused by New.
func TestKVBudgetInvalid(t *testing.T) {
	m, eng := tiny(t)
	pos := int64(eng.NewSequence(1).CacheBytes())
	for _, b := range []int64{-1, 1, minBudgetPositions*pos - 1} {
		if srv, err := New(m, eng, Config{KVBudget: b}); err == nil {
			_ = srv.Close(context.Background())
			t.Errorf("KVBudget %d: no error", b)
		}
	}
}
