package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apr-llm/apr/internal/breakmodel"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// aprBinary builds ./cmd/apr once for the package's tests.
func aprBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "apr-qa-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "apr")
		buildErr = build(context.Background(), binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func options(t *testing.T) Options {
	return Options{
		Bin:         aprBinary(t),
		GGUF:        testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf"),
		SafeTensors: testref.ModelDir(t),
		Modalities:  "run,chat,serve",
		Formats:     "gguf,safetensors,apr",
		Timeout:     60 * time.Second,
	}
}

// TestMatrixPasses: all 18 cells and the three models' checks pass on the
// tiny model as GGUF Q4_K_M, SafeTensors and APR (imported by apr itself).
func TestMatrixPasses(t *testing.T) {
	var progress strings.Builder
	s, err := Run(context.Background(), options(t), &progress)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	s.WriteTable(&table)
	t.Log("\n" + table.String())
	if len(s.Cells) != 18 || len(s.Checks) != 3 {
		t.Fatalf("%d cells and %d checks, want 18 and 3", len(s.Cells), len(s.Checks))
	}
	for _, c := range s.Cells {
		if c.Status != Pass {
			t.Errorf("%s: %s %s", c.Name(), c.Status, c.Reason)
		}
	}
	for _, c := range s.Checks {
		if c.Status != Pass {
			t.Errorf("check %s: %s %s", c.Format, c.Status, c.Reason)
		}
	}
	if !s.Pass {
		t.Error("summary does not pass")
	}
}

// TestBrokenModelFailsMatrix: a NaN planted in one weight of a copy of the
// tiny model fails the matrix: apr check names stage 6 (MLP) and the
// weight, the cells fail on the answer and the trace cell names the first
// non-finite brick.
func TestBrokenModelFailsMatrix(t *testing.T) {
	dir := t.TempDir()
	bad := model.Layer(1, model.FFNDown)
	if err := breakmodel.Copy(testref.ModelDir(t), dir, breakmodel.PlantNaN(bad, 1000)); err != nil {
		t.Fatal(err)
	}
	o := options(t)
	o.SafeTensors, o.Formats, o.Modalities = dir, "safetensors", "run"
	s, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pass || len(s.Checks) != 1 || len(s.Cells) != 2 {
		t.Fatalf("pass %v with %d checks and %d cells", s.Pass, len(s.Checks), len(s.Cells))
	}
	if r := s.Checks[0].Reason; s.Checks[0].Status != Fail || !strings.Contains(r, "stage 6 MLP") || !strings.Contains(r, bad) {
		t.Errorf("check: %s %q, want stage 6 MLP and %s named", s.Checks[0].Status, r, bad)
	}
	for _, c := range s.Cells {
		if c.Status != Fail {
			t.Errorf("%s: %s, want FAIL", c.Name(), c.Status)
		}
		if c.Trace && !strings.Contains(c.Reason, "mlp_down@1") {
			t.Errorf("%s: reason %q does not name mlp_down@1", c.Name(), c.Reason)
		}
	}
}

// TestHangIsKilled: a child that never answers is killed at the timeout,
// with its process group, and reported as HANG.
func TestHangIsKilled(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "apr")
	pidFile := filepath.Join(dir, "pid")
	script := "#!/bin/sh\nsleep 300 &\necho $! > " + pidFile + "\nwait\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Matrix{Bin: fake, Models: map[string]string{"gguf": fake}, Timeout: 2 * time.Second, Dir: dir}
	for _, mod := range []string{"run", "serve"} {
		start := time.Now()
		cells := m.Run(context.Background(), []string{mod}, []string{"gguf"}, nil)
		if len(cells) != 2 {
			t.Fatalf("%d cells", len(cells))
		}
		for _, c := range cells {
			if c.Status != Hang {
				t.Errorf("%s: %s %s, want HANG", c.Name(), c.Status, c.Reason)
			}
		}
		if d := time.Since(start); d > 40*time.Second {
			t.Errorf("%s cells took %v", mod, d)
		}
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild (sleep) must be gone with its group.
	if out, err := exec.Command("ps", "-o", "stat=", "-p", strings.TrimSpace(string(pid))).Output(); err == nil && !strings.HasPrefix(strings.TrimSpace(string(out)), "Z") {
		t.Errorf("the child's child %s outlived the hang kill (state %q)", pid, out)
	}
}

// TestCheckAnswer: the answer checks, each able to fail.
func TestCheckAnswer(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: part of the reason, "" for a pass
	}{
		{"4", ""},
		{"The answer is 4.", ""},
		{"4\n", ""},
		{"", "empty"},
		{"  \n", "empty"},
		{"4 \ufffd", "U+FFFD"},
		{"4<|im_end|>", "raw token"},
		{"[151645, 198]", "raw token"},
		{"<|151645|>", "raw token"},
		{"42", "lacks the word"},
		{"four", "lacks the word"},
		{"1.4", "lacks the word"},
	} {
		got := checkAnswer(tc.in)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkAnswer(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
