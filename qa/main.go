// Command qa runs apr's QA matrix: {run, chat, serve} x {GGUF Q4_K_M,
// SafeTensors, APR} x trace {off, on}, each cell a child process of the
// built apr binary with a hang timeout, the answer to "What is 2+2? Answer
// with just the number." checked (not empty, no U+FFFD, no raw token ids,
// the whole word 4) and trace cells' traces parsed. Before the cells it
// runs `apr check` on each model, so a broken model fails with the stage
// named. It prints a summary table and exits non-zero unless every cell
// and check passed.
//
//	go run ./qa [--apr BIN] [--gguf FILE] [--safetensors DIR] [--apr-model FILE] [--json]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Options are the command's flags.
type Options struct {
	Bin         string
	GGUF        string
	SafeTensors string
	APR         string
	Modalities  string
	Formats     string
	Timeout     time.Duration
	JSON        bool
	NoCheck     bool
}

// Summary is the matrix's result.
type Summary struct {
	Checks []CheckResult `json:"checks"`
	Cells  []Cell        `json:"cells"`
	Pass   bool          `json:"pass"`
}

// Main runs the matrix and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qa", flag.ContinueOnError)
	fs.SetOutput(stderr)
	shared := os.Getenv("APR_SHARED")
	if shared == "" {
		shared = filepath.Join("..", "shared")
	}
	var o Options
	fs.StringVar(&o.Bin, "apr", "", "apr binary to test (default: build ./cmd/apr into a temporary folder)")
	fs.StringVar(&o.GGUF, "gguf", filepath.Join(shared, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf"), "GGUF model")
	fs.StringVar(&o.SafeTensors, "safetensors", filepath.Join(shared, "models", "qwen2-tiny-coder"), "Hugging Face SafeTensors model folder")
	fs.StringVar(&o.APR, "apr-model", "", "APR model (default: apr import of the SafeTensors folder)")
	fs.StringVar(&o.Modalities, "modalities", "run,chat,serve", "comma-separated modalities")
	fs.StringVar(&o.Formats, "formats", "gguf,safetensors,apr", "comma-separated formats")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "per-cell hang timeout")
	fs.BoolVar(&o.JSON, "json", false, "print the summary as JSON")
	fs.BoolVar(&o.NoCheck, "no-check", false, "skip apr check of each model")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	s, err := Run(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "qa: %v\n", err)
		return 1
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
	} else {
		s.WriteTable(stdout)
	}
	if !s.Pass {
		return 1
	}
	return 0
}

// Run prepares the binary and models and runs the checks and cells,
// logging each to progress (may be nil).
func Run(ctx context.Context, o Options, progress io.Writer) (*Summary, error) {
	if progress == nil {
		progress = io.Discard
	}
	dir, err := os.MkdirTemp("", "apr-qa-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if o.Bin == "" {
		o.Bin = filepath.Join(dir, "apr")
		fmt.Fprintf(progress, "qa: building %s\n", o.Bin)
		if err := build(ctx, o.Bin); err != nil {
			return nil, err
		}
	}
	m := &Matrix{Bin: o.Bin, Models: map[string]string{}, Missing: map[string]string{}, Timeout: o.Timeout, Dir: dir}
	formats := split(o.Formats)
	for _, f := range formats {
		var path string
		switch f {
		case "gguf":
			path = o.GGUF
		case "safetensors":
			path = o.SafeTensors
		case "apr":
			path = o.APR
			if path == "" {
				path = filepath.Join(dir, "model.apr")
				fmt.Fprintf(progress, "qa: apr import %s -o %s\n", o.SafeTensors, path)
				if _, err := m.oneShot(ctx, nil, "import", o.SafeTensors, "-o", path); err != nil {
					m.Missing[f] = err.Error()
					continue
				}
			}
		default:
			return nil, fmt.Errorf("unknown format %q (want gguf, safetensors or apr)", f)
		}
		if _, err := os.Stat(path); err != nil {
			m.Missing[f] = err.Error()
			continue
		}
		m.Models[f] = path
	}
	s := &Summary{Pass: true}
	if !o.NoCheck {
		for _, f := range formats {
			if path, ok := m.Models[f]; ok {
				r := m.check(ctx, f, path)
				fmt.Fprintf(progress, "qa: check %-12s %s %s\n", f, r.Status, r.Reason)
				s.Checks = append(s.Checks, r)
				s.Pass = s.Pass && r.Status == Pass
			}
		}
	}
	s.Cells = m.Run(ctx, split(o.Modalities), formats, progress)
	for _, c := range s.Cells {
		s.Pass = s.Pass && c.Status == Pass
	}
	return s, nil
}

// build compiles ./cmd/apr (the module holding this command) into bin
// with the go command on PATH, else the toolchain's at /usr/local/go.
func build(ctx context.Context, bin string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, "github.com/apr-llm/apr/cmd/apr")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, errb.String())
	}
	return nil
}

func split(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// CheckResult is `apr check` of one model.
type CheckResult struct {
	Format string `json:"format"`
	Model  string `json:"model"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"` // the failed stages, named
}

// check runs `apr check --json` and names the failed stages.
func (m *Matrix) check(ctx context.Context, format, path string) CheckResult {
	r := CheckResult{Format: format, Model: path}
	cctx, cancel := context.WithTimeout(ctx, 2*m.Timeout)
	defer cancel()
	out, err := m.oneShot(cctx, nil, "check", path, "--json", "--threads", "1")
	var rep struct {
		Pass   bool `json:"pass"`
		Stages []struct {
			N      int    `json:"stage"`
			Name   string `json:"name"`
			Pass   bool   `json:"pass"`
			Detail string `json:"detail"`
		} `json:"stages"`
		Integrity   string `json:"integrity"`
		IntegrityOK bool   `json:"integrity_ok"`
	}
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		r.Status, r.Reason = Fail, fmt.Sprintf("apr check gave no report: %v", err)
		if cctx.Err() != nil {
			r.Status = Hang
		}
		return r
	}
	var failed []string
	for _, s := range rep.Stages {
		if !s.Pass {
			failed = append(failed, fmt.Sprintf("stage %d %s: %s", s.N, s.Name, s.Detail))
		}
	}
	if !rep.IntegrityOK {
		failed = append(failed, "file integrity: "+rep.Integrity)
	}
	switch {
	case len(failed) > 0:
		r.Status, r.Reason = Fail, strings.Join(failed, "; ")
	case !rep.Pass || err != nil:
		r.Status, r.Reason = Fail, fmt.Sprintf("apr check failed: %v", err)
	default:
		r.Status = Pass
	}
	return r
}

// WriteTable prints the checks and the cells, then a verdict.
func (s *Summary) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(s.Checks) > 0 {
		fmt.Fprintf(tw, "CHECK\tMODEL\tRESULT\tREASON\n")
		for _, c := range s.Checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Format, c.Model, c.Status, c.Reason)
		}
		fmt.Fprintf(tw, "\n")
	}
	fmt.Fprintf(tw, "MODALITY\tFORMAT\tTRACE\tRESULT\tTIME\tANSWER / REASON\n")
	passed := 0
	for _, c := range s.Cells {
		tr := "off"
		if c.Trace {
			tr = "on"
		}
		detail := fmt.Sprintf("%q", strings.TrimSpace(c.Answer))
		if c.Status != Pass {
			detail = c.Reason
		} else {
			passed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1fs\t%s\n", c.Modality, c.Format, tr, c.Status, c.Elapsed.Seconds(), detail)
	}
	tw.Flush()
	verdict := "PASS"
	if !s.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n%s: %d/%d cells passed", verdict, passed, len(s.Cells))
	if len(s.Checks) > 0 {
		ok := 0
		for _, c := range s.Checks {
			if c.Status == Pass {
				ok++
			}
		}
		fmt.Fprintf(w, ", %d/%d models passed apr check", ok, len(s.Checks))
	}
	fmt.Fprintln(w)
}
