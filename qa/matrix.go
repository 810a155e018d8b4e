package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/apr-llm/apr/trace"
)

// Question is asked in every cell; Expected must appear in the answer as a
// whole word.
const (
	Question = "What is 2+2? Answer with just the number."
	Expected = "4"
)

// Status is a cell's outcome.
type Status string

// Cell outcomes.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Hang Status = "HANG"
)

// Cell is one combination of the matrix and its outcome.
type Cell struct {
	Modality string        `json:"modality"` // run, chat, serve
	Format   string        `json:"format"`   // gguf, safetensors, apr
	Trace    bool          `json:"trace"`
	Status   Status        `json:"status"`
	Reason   string        `json:"reason,omitempty"`
	Answer   string        `json:"answer,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// Name is the cell's label, e.g. "serve/gguf/trace".
func (c *Cell) Name() string {
	t := "plain"
	if c.Trace {
		t = "trace"
	}
	return c.Modality + "/" + c.Format + "/" + t
}

// Matrix runs the cells with one apr binary.
type Matrix struct {
	Bin     string            // the built apr binary
	Models  map[string]string // format -> model path; a missing one fails its cells
	Missing map[string]string // format -> why its model is missing
	Timeout time.Duration     // per cell; the child is killed and the cell reported as HANG
	Dir     string            // scratch folder for traces
}

// rawTokens matches output that leaked token ids or special tokens.
var rawTokens = regexp.MustCompile(`<\|[a-z_]+\|>|<\|?\d+\|?>|\[\d+(,\s*\d+)+\]|\btoken_?id`)

// words splits an answer into words and numbers (a decimal point or
// thousands separator inside a number keeps it one word).
var words = regexp.MustCompile(`[\p{L}\p{N}_]+(?:[.,]\p{N}+)*`)

// hasWord reports whether want is one of s's words.
func hasWord(s, want string) bool {
	for _, w := range words.FindAllString(s, -1) {
		if w == want {
			return true
		}
	}
	return false
}

// checkAnswer returns why an answer is wrong, or "".
func checkAnswer(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "empty answer"
	case !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError):
		return fmt.Sprintf("answer %q holds U+FFFD or invalid UTF-8", s)
	case rawTokens.MatchString(s):
		return fmt.Sprintf("answer %q holds raw token ids or special tokens", s)
	case !hasWord(s, Expected):
		return fmt.Sprintf("answer %q lacks the word %q", s, Expected)
	}
	return ""
}

// checkTrace returns why a trace file is not a trace with data, or "".
func checkTrace(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("no trace: %v", err)
	}
	defer f.Close()
	tr, err := trace.Parse(f)
	if err != nil {
		return err.Error()
	}
	if len(tr.Passes) == 0 || len(tr.Bricks) == 0 {
		return fmt.Sprintf("trace holds %d passes and %d bricks", len(tr.Passes), len(tr.Bricks))
	}
	for _, p := range tr.Passes {
		if p.FirstBad != "" {
			return fmt.Sprintf("trace: pass %d has NaN/Inf first at %s", p.Pass, p.FirstBad)
		}
	}
	return ""
}

// Run runs every cell, one after another (they share the CPU).
func (m *Matrix) Run(ctx context.Context, modalities, formats []string, progress io.Writer) []Cell {
	var cells []Cell
	for _, mod := range modalities {
		for _, f := range formats {
			for _, tr := range []bool{false, true} {
				c := Cell{Modality: mod, Format: f, Trace: tr}
				m.run(ctx, &c)
				if progress != nil {
					fmt.Fprintf(progress, "qa: %-24s %s %s\n", c.Name(), c.Status, c.Reason)
				}
				cells = append(cells, c)
			}
		}
	}
	return cells
}

func (m *Matrix) run(ctx context.Context, c *Cell) {
	start := time.Now()
	defer func() { c.Elapsed = time.Since(start) }()
	model, ok := m.Models[c.Format]
	if !ok {
		c.Status, c.Reason = Fail, "no "+c.Format+" model: "+m.Missing[c.Format]
		return
	}
	var extra []string
	tracePath := ""
	if c.Trace {
		tracePath = filepath.Join(m.Dir, strings.ReplaceAll(c.Name(), "/", "-")+".jsonl")
		extra = append(extra, "--trace", tracePath)
	}
	cctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	var answer string
	var err error
	switch c.Modality {
	case "run":
		answer, err = m.oneShot(cctx, nil, append([]string{"run", model, "--temperature", "0", "-n", "16", "--threads", "1", Question}, extra...)...)
	case "chat":
		answer, err = m.oneShot(cctx, strings.NewReader(Question+"\n"), append([]string{"chat", model, "--temperature", "0", "-n", "16", "--threads", "1"}, extra...)...)
	case "serve":
		answer, err = m.serve(cctx, model, extra)
	default:
		err = fmt.Errorf("unknown modality %q", c.Modality)
	}
	c.Answer = answer
	switch {
	case errors.Is(err, context.DeadlineExceeded) || cctx.Err() != nil && err != nil:
		c.Status, c.Reason = Hang, fmt.Sprintf("no result within %v; killed (%v)", m.Timeout, err)
		return
	case err != nil:
		c.Status, c.Reason = Fail, err.Error()
		return
	}
	if why := checkAnswer(answer); why != "" {
		c.Status, c.Reason = Fail, why
		if c.Trace {
			if t := checkTrace(tracePath); t != "" {
				c.Reason += "; " + t
			}
		}
		return
	}
	if c.Trace {
		if why := checkTrace(tracePath); why != "" {
			c.Status, c.Reason = Fail, why
			return
		}
	}
	c.Status = Pass
}

// command builds a child in its own process group, killed as a group when
// ctx ends.
func (m *Matrix) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, m.Bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// oneShot runs apr with args and returns its stdout.
func (m *Matrix) oneShot(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := m.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return out.String(), ctx.Err()
		}
		return out.String(), fmt.Errorf("apr %s: %v: %s", args[0], err, lastLine(errb.String()))
	}
	return out.String(), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serve starts apr serve on a free loopback port, asks the question through
// /v1/chat/completions, then stops the server with SIGTERM (SIGKILL after
// 10 s) and makes sure the process is gone and the port closed.
func (m *Matrix) serve(ctx context.Context, model string, extra []string) (answer string, err error) {
	port, err := freePort()
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	cmd := m.command(ctx, append([]string{"serve", model, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--threads", "1", "--parallel", "1"}, extra...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start apr serve: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if stopErr := stop(cmd, exited, port); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitHealthy(ctx, base, exited, &errb); err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]any{
		"model":       "qa",
		"messages":    []map[string]string{{"role": "user", "content": Question}},
		"temperature": 0,
		"max_tokens":  16,
	})
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("chat completion: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("chat completion: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("chat completion: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Choices) == 0 {
		return "", fmt.Errorf("chat completion: unexpected body %q (%v)", truncate(string(raw)), err)
	}
	return r.Choices[0].Message.Content, nil
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// waitHealthy polls /health until it answers 200, the server exits, or ctx
// ends.
func waitHealthy(ctx context.Context, base string, exited chan error, errb *bytes.Buffer) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/health", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err // for stop
			return fmt.Errorf("apr serve exited before it was healthy: %v: %s", err, lastLine(errb.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the server: SIGTERM, then SIGKILL to its group after 10 s. It
// reports a server that needed killing or still holds its port.
func stop(cmd *exec.Cmd, exited chan error, port int) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	var problem error
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		problem = errors.New("apr serve did not stop within 10 s of SIGTERM; killed")
	}
	// The process group must be empty: signal 0 fails once no process is left.
	if err := syscall.Kill(-cmd.Process.Pid, 0); err == nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return errors.New("a process of apr serve's group outlived it")
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		return fmt.Errorf("port %d still accepts connections after apr serve stopped", port)
	}
	return problem
}
