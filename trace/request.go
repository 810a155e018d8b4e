package trace

import (
	"fmt"
	"sync"

	"github.com/apr-llm/apr/engine"
)

// Level is how much of one sequence's forward passes a Recorder keeps
// (the X-Trace-Level header of apr serve).
type Level string

// The levels: LevelLayer keeps one line per decoder layer and pass,
// LevelBrick one line per brick and pass.
const (
	LevelNone  Level = ""
	LevelLayer Level = "layer"
	LevelBrick Level = "brick"
)

// ParseLevel reads a level: "layer" or "brick"; "" and "none" are
// LevelNone.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "", "none", "off":
		return LevelNone, nil
	case "layer", "brick":
		return Level(s), nil
	}
	return LevelNone, fmt.Errorf("trace level %q: want layer, brick or none", s)
}

// LayerLine sums one decoder layer of one pass for one sequence (level
// "layer").
type LayerLine struct {
	Type      string  `json:"type"` // "layer"
	Pass      int     `json:"pass"`
	Layer     int     `json:"layer"`
	Rows      int     `json:"rows"`       // the sequence's rows in the pass
	BatchRows int     `json:"batch_rows"` // rows of the whole batched pass
	Bricks    int     `json:"bricks"`
	ElapsedUS float64 `json:"elapsed_us"` // the layer's brick timers, summed (the whole batched pass)
	Output    Stats   `json:"output"`     // the layer's output (its last residual), the sequence's rows
	NaN       int     `json:"nan"`        // over all the layer's outputs, the sequence's rows
	Inf       int     `json:"inf"`
}

// Recorder is an engine.Probe that keeps the trace of one sequence out of
// batched forward passes: every brick's outputs are cut down to the rows
// that BrickEvent.Seqs attributes to the sequence, and passes without the
// sequence are skipped. Pass numbers count the sequence's own passes from
// 0. Timers are those of the whole batched brick. It is safe for
// concurrent use.
type Recorder struct {
	seq   *engine.Sequence
	level Level

	mu    sync.Mutex
	lines []any
	pass  int
	open  bool
	seen  bool
	cur   PassLine
	layer *LayerLine // the layer being summed (level "layer")
}

// NewRecorder records seq's passes at level (LevelLayer or LevelBrick).
func NewRecorder(seq *engine.Sequence, level Level) *Recorder {
	return &Recorder{seq: seq, level: level}
}

// rowsOf returns the first and end index of seq's rows in ev (a batch
// entry's rows are contiguous); lo == hi when it has none.
func rowsOf(ev engine.BrickEvent, seq *engine.Sequence) (lo, hi int) {
	lo = -1
	for i, s := range ev.Seqs {
		if s != seq {
			continue
		}
		if lo < 0 {
			lo = i
		}
		hi = i + 1
	}
	if lo < 0 {
		return 0, 0
	}
	return lo, hi
}

// Brick records the sequence's part of one brick (engine.Probe).
func (r *Recorder) Brick(ev engine.BrickEvent) {
	lo, hi := rowsOf(ev, r.seq)
	if lo == hi || ev.Rows == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open {
		if r.seen {
			r.pass++
		}
		r.open, r.seen = true, true
		r.cur = PassLine{Type: "pass", Pass: r.pass}
	}
	line := BrickLine{Type: "brick", Pass: r.pass, Layer: ev.Layer, Brick: string(ev.Brick), Rows: hi - lo,
		ElapsedUS: float64(ev.Elapsed.Nanoseconds()) / 1e3}
	for _, o := range ev.Outputs {
		w := len(o) / ev.Rows
		line.Outputs = append(line.Outputs, Summarize(o[lo*w:hi*w]))
	}
	r.cur.count(line)
	r.add(line, ev.Rows)
	if closesPass(ev.Brick) {
		r.flushLayer()
		r.cur.end()
		r.lines = append(r.lines, r.cur)
		r.open = false
	}
}

// add keeps line at brick level, or folds it into its layer's line.
func (r *Recorder) add(line BrickLine, batchRows int) {
	if r.level != LevelLayer || line.Layer < 0 {
		r.flushLayer()
		r.lines = append(r.lines, line)
		return
	}
	if r.layer != nil && r.layer.Layer != line.Layer {
		r.flushLayer()
	}
	if r.layer == nil {
		r.layer = &LayerLine{Type: "layer", Pass: line.Pass, Layer: line.Layer, Rows: line.Rows, BatchRows: batchRows}
	}
	l := r.layer
	l.Bricks++
	l.ElapsedUS += line.ElapsedUS
	for _, s := range line.Outputs {
		l.NaN += s.NaN
		l.Inf += s.Inf
	}
	if line.Brick == string(engine.BrickResidual) && len(line.Outputs) > 0 {
		l.Output = line.Outputs[0]
	}
}

// flushLayer writes the layer being summed, if any.
func (r *Recorder) flushLayer() {
	if r.layer != nil {
		r.lines = append(r.lines, *r.layer)
		r.layer = nil
	}
}

// Lines returns the recorded lines so far (BrickLine, LayerLine and
// PassLine values, in order), each encoding as one JSON object.
func (r *Recorder) Lines() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.lines...)
}
