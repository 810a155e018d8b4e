package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/trace"
)

// registerTrace adds --trace FILE (run, chat and serve).
func (f *modelFlags) registerTrace(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.trace, "trace", "", "write a JSON-lines trace of every forward pass (brick timings, activation stats) to FILE; see docs/trace.md")
}

// traceFile is an open --trace file, installed as the engine's probe.
type traceFile struct {
	f *os.File
	w *trace.Writer
}

// startTrace creates path and installs a trace writer on l's engine.
func startTrace(path string, l *loaded) (*traceFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--trace: %w", err)
	}
	t := &traceFile{f: f, w: trace.NewWriter(f, l.model.Path, l.model.Format, l.engine.Device())}
	l.engine.SetProbe(t.w)
	return t, nil
}

// close flushes and closes the trace (nil-safe).
func (t *traceFile) close() error {
	if t == nil {
		return nil
	}
	return errors.Join(t.w.Close(), t.f.Close())
}
