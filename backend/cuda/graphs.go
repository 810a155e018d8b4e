package cuda

import (
	"errors"
	"fmt"
)

// passGraphRows is the most rows of a pass that Forward replays as a
// captured CUDA graph (0: none). A pass's ~300 launches through purego
// cost the host about as long as a few-row pass takes the device; a graph
// is one launch. Larger passes keep the device busy longer than their
// launches take. A variable for the benchmarks that compare.
var passGraphRows = 64

// maxPassGraphs bounds the graphs a Model keeps (one per pass shape: rows
// and logits rows); shapes past it are launched kernel by kernel.
const maxPassGraphs = 64

// passKey is a pass's shape: m rows, the first n of whose selected rows
// get logits.
type passKey struct {
	m, n int
	long bool // Model.long: the split decode attention in the graph
}

// passGraphs are a Model's captured passes of more than one row. The
// kernels read every row's token, position and slot and the selection of
// logits rows from the state buffer, and the pass's buffers are fixed, so
// a graph of a shape serves every mix of slots and positions; only enqueue
// and head's launches (grids and pass sizes from m and n) are recorded.
type passGraphs struct {
	exec map[passKey]uintptr
	seen map[passKey]int // shapes run but not captured yet
}

// runPass issues the layers and the LM head for n selected rows of the m
// rows in the state buffer (a whole pass of one chunk, from the
// embedding): by replaying the shape's graph, capturing it the second time
// the shape runs (a shape seen once, a prompt's, is not worth a capture).
func (g *Model) runPass(m, n int) error {
	if g.opts.NoGraph || m > passGraphRows || n > g.logitRows {
		return g.enqueuePass(m, n)
	}
	k := passKey{m, n, g.long}
	exec, ok := g.graphs.exec[k]
	if !ok {
		if g.graphs.seen == nil {
			g.graphs.exec, g.graphs.seen = map[passKey]uintptr{}, map[passKey]int{}
		}
		g.graphs.seen[k]++
		if g.graphs.seen[k] < 2 || len(g.graphs.exec) >= maxPassGraphs {
			return g.enqueuePass(m, n)
		}
		var err error
		if exec, err = g.capturePass(m, n); err != nil {
			return err
		}
		delete(g.graphs.seen, k)
		g.graphs.exec[k] = exec
	}
	d := g.dev
	return d.drv.check("cuGraphLaunch (pass)", d.drv.cuGraphLaunch(exec, d.stream))
}

// enqueuePass launches runPass's work kernel by kernel.
func (g *Model) enqueuePass(m, n int) error {
	if err := g.enqueue(m, m, nil); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return g.head(0, n, m)
}

// capturePass records enqueuePass(m, n) as a CUDA graph and instantiates it.
func (g *Model) capturePass(m, n int) (uintptr, error) {
	d := g.dev
	const captureThreadLocal = 1
	if err := d.drv.check("cuStreamBeginCapture", d.drv.cuStreamBeginCapture(d.stream, captureThreadLocal)); err != nil {
		return 0, err
	}
	errEnq := g.enqueuePass(m, n)
	var graph uintptr
	errEnd := d.drv.check("cuStreamEndCapture", d.drv.cuStreamEndCapture(d.stream, &graph))
	if err := errors.Join(errEnq, errEnd); err != nil {
		if graph != 0 {
			d.drv.cuGraphDestroy(graph)
		}
		return 0, fmt.Errorf("cuda: capture a pass of %d rows: %w", m, err)
	}
	defer d.drv.cuGraphDestroy(graph)
	var exec uintptr
	if err := d.drv.check("cuGraphInstantiate (pass)", d.drv.cuGraphInstantiate(&exec, graph, 0)); err != nil {
		return 0, err
	}
	return exec, nil
}

// freeGraphs destroys the captured passes (the device must be bound).
func (g *Model) freeGraphs() {
	for _, e := range g.graphs.exec {
		g.dev.drv.cuGraphExecDestroy(e)
	}
	g.graphs = passGraphs{}
}
