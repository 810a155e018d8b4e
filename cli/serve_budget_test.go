package cli

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// TestServeKVBudget: `apr serve --kv-budget` on the CPU reports the budget
// at start-up, and refuses sizes it cannot read or that hold too little.
// (--device cpu: a GPU machine would otherwise serve from the device, whose
// line TestGPUKVLine checks.)
func TestServeKVBudget(t *testing.T) {
	dir := testref.ModelDir(t)
	cases := []struct {
		budget  string
		args    []string // more flags
		want    string   // in the start-up line; "" : an error
		wantErr string
	}{
		{budget: "1MiB", want: "KV budget 1.0 MiB: 512 tokens"},
		{budget: "0.5", want: "KV budget 0.5 MiB"},
		{budget: "lots", wantErr: "--kv-budget"},
		{budget: "16B", wantErr: "token positions"},
		// 2 KiB of float32 keys and values a position; half of it in F16.
		{budget: "1MiB", want: "KV budget 1.0 MiB: 512 tokens, 1 full-context sequences at once; a request waits until its cache fits; KV cache type f32"},
		{budget: "1MiB", args: []string{"--cache-type-k", "f16"}, want: "KV budget 1.0 MiB: 1024 tokens, 2 full-context sequences at once; a request waits until its cache fits; KV cache type f16"},
	}
	for _, c := range cases {
		t.Run(c.budget+strings.Join(c.args, ""), func(t *testing.T) {
			pr, pw := io.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			root := NewRoot(strings.NewReader(""), io.Discard, pw)
			root.SetArgs(append([]string{"serve", dir, "--port", "0", "--ctx-size", "512", "-t", "1", "--device", "cpu", "--kv-budget", c.budget}, c.args...))
			done := make(chan error, 1)
			go func() {
				done <- root.ExecuteContext(ctx)
				pw.Close()
			}()
			sc := bufio.NewScanner(pr)
			var line string
			for sc.Scan() {
				if strings.Contains(sc.Text(), "serving") {
					line = sc.Text()
					break
				}
			}
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			cancel()
			err := <-done
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(line, c.want) {
				t.Fatalf("start-up line %q (err %v), want %q", line, err, c.want)
			}
		})
	}
}

// TestGPUKVLine: the start-up line's account of the GPU's KV cache names
// the slots, their context and memory, the budget, and a cut --parallel.
func TestGPUKVLine(t *testing.T) {
	cases := []struct {
		name                 string
		slots, ctx, parallel int
		bytes, budget        int64
		want, not            string
	}{
		{name: "as asked", slots: 4, ctx: 4096, parallel: 4, bytes: 448 << 20,
			want: "GPU KV cache 4 slots of 4096 tokens, 448.0 MiB", not: "cut"},
		{name: "budget holds all", slots: 4, ctx: 4096, parallel: 4, bytes: 448 << 20, budget: 1 << 30,
			want: "448.0 MiB of a 1024.0 MiB budget", not: "cut"},
		{name: "budget cuts parallel", slots: 2, ctx: 32768, parallel: 32, bytes: 1792 << 20, budget: 2 << 30,
			want: "GPU KV cache 2 slots of 32768 tokens, 1792.0 MiB of a 2048.0 MiB budget; --parallel 32 cut to the 2 slots"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := gpuKVLine(c.slots, c.ctx, c.bytes, c.budget, c.parallel)
			if !strings.Contains(got, c.want) || (c.not != "" && strings.Contains(got, c.not)) {
				t.Fatalf("%q, want %q (and not %q)", got, c.want, c.not)
			}
		})
	}
}
