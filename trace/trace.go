// Package trace writes apr's execution traces: one JSON object per line for
// every brick of every forward pass (its timer and statistics of the
// activations it produced) and a summary line per pass. The schema is
// documented in docs/trace.md. A Writer is an engine.Probe.
package trace

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/apr-llm/apr/engine"
)

// Version is the trace schema's version, written in the header line.
const Version = 1

// Header is the first line of a trace.
type Header struct {
	Type    string    `json:"type"` // "header"
	Version int       `json:"version"`
	Model   string    `json:"model,omitempty"`
	Format  string    `json:"format,omitempty"`
	Device  string    `json:"device,omitempty"` // "cpu" or "cuda (GPU name)"
	Started time.Time `json:"started"`
}

// BrickLine is one brick's run in one forward pass.
type BrickLine struct {
	Type      string  `json:"type"` // "brick"
	Pass      int     `json:"pass"`
	Layer     int     `json:"layer"`
	Brick     string  `json:"brick"`
	Rows      int     `json:"rows"`
	ElapsedUS float64 `json:"elapsed_us"`
	Outputs   []Stats `json:"outputs"`
}

// PassLine closes a forward pass (written after its lm_head). Rows is
// the number of tokens the pass fed (its token_embed's rows).
type PassLine struct {
	Type      string  `json:"type"` // "pass"
	Pass      int     `json:"pass"`
	Rows      int     `json:"rows"`
	Bricks    int     `json:"bricks"`
	BricksUS  float64 `json:"bricks_us"` // the pass's bricks' timers, summed
	NaN       int     `json:"nan"`       // over all the pass's activations
	Inf       int     `json:"inf"`
	FirstBad  string  `json:"first_bad,omitempty"` // first brick with a NaN or Inf: "mlp_down@1"
	EndedUnix float64 `json:"ended_unix"`
}

// Writer is an engine.Probe that writes a trace. It is safe for use by one
// engine (whose forward passes are serialised) and its own Close.
type Writer struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	enc  *json.Encoder
	err  error
	pass int      // the current (or last) pass
	open bool     // a pass is open
	seen bool     // any pass was opened
	cur  PassLine // the open pass's totals
}

// NewWriter starts a trace on w with a header line naming the model and
// the device it runs on (engine.Engine.Device).
func NewWriter(w io.Writer, model, format, device string) *Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	t := &Writer{bw: bw, enc: json.NewEncoder(bw)}
	t.write(Header{Type: "header", Version: Version, Model: model, Format: format, Device: device, Started: time.Now().UTC()})
	t.flush()
	return t
}

func (t *Writer) write(v any) {
	if t.err == nil {
		if err := t.enc.Encode(v); err != nil {
			t.err = fmt.Errorf("trace: %w", err)
		}
	}
}

func (t *Writer) flush() {
	if t.err == nil {
		if err := t.bw.Flush(); err != nil {
			t.err = fmt.Errorf("trace: %w", err)
		}
	}
}

// Brick records one brick (engine.Probe). The first brick after a closed
// pass opens the next one; lm_head closes it with a pass line and flushes.
// Sampling, which reads the logits of the pass just closed, belongs to it.
func (t *Writer) Brick(ev engine.BrickEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.open && ev.Brick != engine.BrickSampling {
		if t.seen {
			t.pass++
		}
		t.open, t.seen = true, true
		t.cur = PassLine{Type: "pass", Pass: t.pass}
	}
	line := BrickLine{Type: "brick", Pass: t.pass, Layer: ev.Layer, Brick: string(ev.Brick), Rows: ev.Rows,
		ElapsedUS: float64(ev.Elapsed.Nanoseconds()) / 1e3}
	for _, o := range ev.Outputs {
		line.Outputs = append(line.Outputs, Summarize(o))
	}
	t.write(line)
	if !t.open {
		t.flush()
		return
	}
	t.cur.count(line)
	if closesPass(ev.Brick) {
		t.cur.end()
		t.write(t.cur)
		t.open = false
		t.flush()
	}
}

// count adds one of the pass's bricks to its totals (its rows if the brick
// opens the pass; the first brick with a NaN or Inf).
func (p *PassLine) count(line BrickLine) {
	if opensPass(engine.Brick(line.Brick)) {
		p.Rows = line.Rows
	}
	p.Bricks++
	p.BricksUS += line.ElapsedUS
	for _, s := range line.Outputs {
		p.NaN += s.NaN
		p.Inf += s.Inf
		if !s.Finite() && p.FirstBad == "" {
			p.FirstBad = fmt.Sprintf("%s@%d", line.Brick, line.Layer)
		}
	}
}

// end stamps the pass's end time.
func (p *PassLine) end() { p.EndedUnix = float64(time.Now().UnixNano()) / 1e9 }

// opensPass reports whether b is a pass's first brick, whose rows are the
// pass's: token_embed, or device_forward, a whole pass on the GPU.
func opensPass(b engine.Brick) bool { return b == engine.BrickEmbed || b == engine.BrickDevice }

// closesPass reports whether b ends a pass: lm_head, or device_forward.
func closesPass(b engine.Brick) bool { return b == engine.BrickLMHead || b == engine.BrickDevice }

// Err returns the first write error.
func (t *Writer) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close flushes the trace (it does not close the underlying writer).
func (t *Writer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flush()
	return t.err
}
