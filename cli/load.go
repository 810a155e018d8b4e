package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/cpuinfo"
	"github.com/apr-llm/apr/model"
)

// loaded is a model bound to an engine.
type loaded struct {
	model   *model.Model
	engine  *engine.Engine
	elapsed time.Duration
	trace   *traceFile // --trace, when given
}

func (l *loaded) Close() {
	_ = l.trace.close()
	l.engine.Close()
	l.model.Close()
}

// modelFlags are shared by every command that loads a model to compute.
type modelFlags struct {
	threads int
	verbose bool
	trace   string // --trace FILE (see registerTrace); empty: none
	// --device, --gpu and --gpu-layers (see registerDevice); commands
	// without them compute on the CPU.
	device    string
	gpu       bool
	gpuLayers int
	// --cache-type-k and --cache-type-v (see registerCache); "": the
	// model's own.
	cacheK, cacheV string
	// Set by the command before loading: how many sequences it runs at
	// once and their context, which size the GPU's KV caches, and the
	// most memory those caches may take (0: no bound).
	slots, ctx int
	kvBudget   int64
}

func (f *modelFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVarP(&f.threads, "threads", "t", defaultThreads(), "number of threads to compute with")
	cmd.Flags().BoolVar(&f.verbose, "verbose", false, "print load time, architecture, token counts and speeds to stderr")
}

// defaultThreads is the number of physical cores, as llama.cpp chooses.
func defaultThreads() int { return cpuinfo.PhysicalCores() }

// load opens path and binds it to a CPU engine, with a spinner on stderr
// when stderr is a terminal.
func (e *env) load(path string, f *modelFlags) (*loaded, error) {
	path, err := resolveModel(path)
	if err != nil {
		return nil, err
	}
	cache, err := f.cacheType()
	if err != nil {
		return nil, err
	}
	stop := e.spinner("loading " + path)
	t0 := time.Now()
	m, err := format.OpenWith(path, format.Options{Populate: true}) // about to compute
	if err != nil {
		stop()
		return nil, err
	}
	off, err := f.offload()
	if err != nil {
		stop()
		m.Close()
		return nil, err
	}
	eng, notice, err := engine.Load(m, engine.OptionsFor(m, f.threads).WithCache(cache), off)
	stop()
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if notice != "" {
		fmt.Fprintln(e.stderr, notice)
	}
	l := &loaded{model: m, engine: eng, elapsed: time.Since(t0)}
	if f.trace != "" {
		if l.trace, err = startTrace(f.trace, l); err != nil {
			l.Close()
			return nil, err
		}
	}
	if f.verbose {
		c := m.Config
		fmt.Fprintf(e.stderr, "apr: loaded %s (%s) in %.2fs: %s, %d layers, hidden %d, %d heads / %d kv heads, vocab %d, %d threads; device %s; KV cache %s\n",
			path, m.Format, l.elapsed.Seconds(), c.Arch, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.VocabSize, eng.Threads(), eng.Device(), eng.Cache())
		e.verboseLoad(m)
	}
	return l, nil
}

// spinner shows an indeterminate progress spinner on a terminal stderr and
// returns the function that clears it.
func (e *env) spinner(what string) func() {
	f, ok := e.stderr.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return func() {}
	}
	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetDescription(what),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(80 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				_ = bar.Finish()
				_ = bar.Clear()
				return
			case <-t.C:
				_ = bar.Add(1)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
