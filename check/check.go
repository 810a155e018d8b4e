// Package check runs apr's ten-stage self-check of a loaded model: every
// stage executes the real code path (tokenizer, forward pass bricks observed
// through the engine's probe, sampler) and compares what it produced against
// an independent float64 recomputation or an invariant, so each stage can
// fail. It also fingerprints the model's files with SHA-256.
package check

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format/apr"
	"github.com/apr-llm/apr/model"
)

// Stage is one check's outcome: a pass or fail and the value it measured.
type Stage struct {
	N      int    `json:"stage"`
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Value  string `json:"value"`
	Detail string `json:"detail,omitempty"` // why the stage failed
}

// FileSum is the SHA-256 of one of the model's files.
type FileSum struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Report is the outcome of Run.
type Report struct {
	Model  string    `json:"model"`
	Format string    `json:"format"`
	Pass   bool      `json:"pass"`
	Stages []Stage   `json:"stages"`
	Files  []FileSum `json:"files"`
	// Integrity is the verification of checksums the file carries (APR's
	// whole-file and per-tensor sums); empty for formats without them.
	Integrity   string `json:"integrity,omitempty"`
	IntegrityOK bool   `json:"integrity_ok"`
}

// Failed returns the stages that failed.
func (r *Report) Failed() []Stage {
	var out []Stage
	for _, s := range r.Stages {
		if !s.Pass {
			out = append(out, s)
		}
	}
	return out
}

// WriteTable prints the stages and checksums as an aligned table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "STAGE\tCHECK\tRESULT\tMEASURED\n")
	for _, s := range r.Stages {
		res := "PASS"
		val := s.Value
		if !s.Pass {
			res = "FAIL"
			val = strings.TrimSpace(val + " " + s.Detail)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.N, s.Name, res, val)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, f := range r.Files {
		fmt.Fprintf(w, "sha256 %s  %d bytes  %s\n", f.SHA256, f.Bytes, f.Path)
	}
	if r.Integrity != "" {
		fmt.Fprintf(w, "integrity: %s\n", r.Integrity)
	}
	verdict := "all 10 stages passed"
	if !r.Pass {
		var names []string
		if !r.IntegrityOK {
			names = append(names, "file integrity")
		}
		for _, s := range r.Failed() {
			names = append(names, fmt.Sprintf("%d %s", s.N, s.Name))
		}
		verdict = "FAILED: " + strings.Join(names, ", ")
	}
	_, err := fmt.Fprintf(w, "\n%s: %s\n", r.Model, verdict)
	return err
}

// Run checks m, bound to eng, in ten stages and sums its files. It installs
// its own probe on eng for the duration and removes it afterwards. It
// returns an error only when the files cannot be read; a broken model gives
// a Report with failed stages.
func Run(m *model.Model, eng *engine.Engine) (*Report, error) {
	files, err := Checksums(m.Path)
	if err != nil {
		return nil, err
	}
	c := newChecker(m, eng)
	r := &Report{Model: m.Path, Format: m.Format, Pass: true, Files: files, IntegrityOK: true}
	if m.Format == "apr" {
		r.Integrity = "embedded whole-file and per-tensor checksums verified"
		if err := apr.VerifyFile(m.Path); err != nil {
			r.Integrity, r.IntegrityOK, r.Pass = err.Error(), false, false
		}
	}
	for i, st := range stages {
		s := Stage{N: i + 1, Name: st.name}
		val, err := c.run(st.fn)
		s.Value = val
		if err != nil {
			s.Detail = err.Error()
			r.Pass = false
		} else {
			s.Pass = true
		}
		r.Stages = append(r.Stages, s)
	}
	return r, nil
}

// run calls a stage, turning a panic from a malformed model into a failure.
func (c *checker) run(fn func(*checker) (string, error)) (val string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stage crashed: %v", p)
		}
	}()
	return fn(c)
}

// stages are the ten checks in order.
var stages = []struct {
	name string
	fn   func(*checker) (string, error)
}{
	{"tokenizer round trip", (*checker).tokenizer},
	{"embedding lookup", (*checker).embedding},
	{"positional encoding (RoPE)", (*checker).rope},
	{"Q/K/V projection", (*checker).qkv},
	{"attention scores", (*checker).attention},
	{"MLP", (*checker).mlp},
	{"norms", (*checker).norms},
	{"LM head", (*checker).lmHead},
	{"logits -> probs", (*checker).probs},
	{"sampler/decode", (*checker).decode},
}
