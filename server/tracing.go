package server

import (
	"net/http"
	"sync"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/trace"
)

// traceHeader is the request header that asks for a request's own trace.
const traceHeader = "X-Trace-Level"

// tracer is the engine probe of a scheduler while some request is traced:
// it hands every brick to the server-wide probe (--trace), if any, and to
// the recorder of each traced sequence, which keeps that sequence's rows.
// The scheduler installs it when the first traced request starts and puts
// the server-wide probe back when the last one ends, so untraced serving
// reads no clock.
type tracer struct {
	eng  *engine.Engine
	base engine.Probe

	mu   sync.Mutex
	recs map[*engine.Sequence]*trace.Recorder
}

func newTracer(eng *engine.Engine, base engine.Probe) *tracer {
	return &tracer{eng: eng, base: base, recs: map[*engine.Sequence]*trace.Recorder{}}
}

// Brick implements engine.Probe.
func (t *tracer) Brick(ev engine.BrickEvent) {
	if t.base != nil {
		t.base.Brick(ev)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.recs {
		r.Brick(ev)
	}
}

// attach starts recording seq at level. It must not run during a forward
// pass (the scheduler calls it between steps).
func (t *tracer) attach(seq *engine.Sequence, level trace.Level) {
	r := trace.NewRecorder(seq, level)
	t.mu.Lock()
	t.recs[seq] = r
	first := len(t.recs) == 1
	t.mu.Unlock()
	if first {
		t.eng.SetProbe(t)
	}
}

// recorder returns seq's recorder, nil when it has none.
func (t *tracer) recorder(seq *engine.Sequence) *trace.Recorder {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recs[seq]
}

// detach stops recording seq.
func (t *tracer) detach(seq *engine.Sequence) {
	t.mu.Lock()
	delete(t.recs, seq)
	last := len(t.recs) == 0
	t.mu.Unlock()
	if last {
		t.eng.SetProbe(t.base)
	}
}

// requestTrace reads X-Trace-Level into j: "layer" or "brick" asks for the
// request's own trace in its response (whose X-Trace-Level header echoes
// the level); absent or "none" for none.
func requestTrace(w http.ResponseWriter, r *http.Request, j *job) error {
	level, err := trace.ParseLevel(r.Header.Get(traceHeader))
	if err != nil {
		return invalid(traceHeader, "%v", err)
	}
	j.traceLevel = level
	if level != trace.LevelNone {
		w.Header().Set(traceHeader, string(level))
	}
	return nil
}

// traceObject is the "trace" member of a traced response: the level and
// the sequence's trace lines (docs/trace.md).
func traceObject(j *job, lines []any) map[string]any {
	return map[string]any{"level": string(j.traceLevel), "lines": nonNil(lines)}
}

// addTrace puts a traced request's trace into its response body out.
func addTrace(out map[string]any, j *job, ev event) {
	if j.traceLevel != trace.LevelNone {
		out["trace"] = traceObject(j, ev.trace)
	}
}
