package cli

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// TestServeKVBudget: `apr serve --kv-budget` reports the budget at
// start-up, and refuses sizes it cannot read or that hold too little.
func TestServeKVBudget(t *testing.T) {
	dir := testref.ModelDir(t)
	cases := []struct {
		budget  string
		want    string // in the start-up line; "" : an error
		wantErr string
	}{
		{budget: "1MiB", want: "KV budget 1.0 MiB"},
		{budget: "0.5", want: "KV budget 0.5 MiB"},
		{budget: "lots", wantErr: "--kv-budget"},
		{budget: "16B", wantErr: "token positions"},
	}
	for _, c := range cases {
		t.Run(c.budget, func(t *testing.T) {
			pr, pw := io.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			root := NewRoot(strings.NewReader(""), io.Discard, pw)
			root.SetArgs([]string{"serve", dir, "--port", "0", "--ctx-size", "512", "-t", "1", "--kv-budget", c.budget})
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
