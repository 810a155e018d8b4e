package engine

import (
	"runtime"
	"testing"

	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
)

// decodeModels are the shared tiny model's three files.
var decodeModels = []struct{ name, path string }{
	{"safetensors-bf16", ""},
	{"gguf-q8_0", "qwen2-tiny-coder-q8_0.gguf"},
	{"gguf-q4_k_m", "qwen2-tiny-coder-q4_k_m.gguf"},
}

// decodeEngine opens one of decodeModels with the default thread count.
func decodeEngine(tb testing.TB, file string) *Engine {
	tb.Helper()
	path := testref.ModelDir(tb)
	if file != "" {
		path = testref.Path(tb, "models", "qwen2-tiny-coder-gguf", file)
	}
	m, err := format.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	e, err := New(m.Config, m.Tensors, OptionsFor(m, 0))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Close)
	return e
}

// decoder runs single-token forward passes on one sequence, reusing its
// logits buffer and starting over when the context is full.
type decoder struct {
	s      *Sequence
	logits []float32
	tok    [1]int
}

func newDecoder(tb testing.TB, e *Engine) *decoder {
	tb.Helper()
	d := &decoder{s: e.NewSequence(256)}
	var err error
	if d.logits, err = d.s.ForwardInto(nil, []int{750, 15801, 1445, 1648}, false); err != nil {
		tb.Fatal(err)
	}
	return d
}

func (d *decoder) step(tb testing.TB) {
	if d.s.Pos() == d.s.Context() {
		d.s.Truncate(4)
	}
	d.tok[0] = argmax(d.logits)
	var err error
	if d.logits, err = d.s.ForwardInto(d.logits, d.tok[:], false); err != nil {
		tb.Fatal(err)
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// BenchmarkDecode measures one decode step (a single token through the
// model, logits into the previous step's buffer) on the shared tiny model;
// -benchmem shows the allocations per token.
func BenchmarkDecode(b *testing.B) {
	for _, m := range decodeModels {
		b.Run(m.name, func(b *testing.B) {
			d := newDecoder(b, decodeEngine(b, m.path))
			b.ReportAllocs()
			for b.Loop() {
				d.step(b)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// decodeMallocs counts the heap allocations of steps decode steps.
func decodeMallocs(tb testing.TB, d *decoder, steps int) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range steps {
		d.step(tb)
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// TestDecodeAllocatesNothing checks that decode steps with a reused logits
// buffer make no heap allocation of their own, for every file type.
func TestDecodeAllocatesNothing(t *testing.T) {
	for _, m := range decodeModels {
		t.Run(m.name, func(t *testing.T) {
			d := newDecoder(t, decodeEngine(t, m.path))
			d.step(t) // grow the scratch buffers for a decode step
			// 200 steps counted in total (testing.AllocsPerRun rounds down,
			// hiding a buffer that reallocates every few steps). A few
			// allocations are the runtime's own (sudogs for the pool's
			// parked helpers); one per step would be 200.
			const steps, allowed = 200, 10
			if n := decodeMallocs(t, d, steps); n > allowed {
				t.Errorf("%d allocations in %d decode steps, want at most %d (none of the forward pass's own)", n, steps, allowed)
			}
		})
	}
}
