package engine

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
)

// cpuDevice is a device that runs each slot as a CPU engine sequence: the
// engine's routing (slots, eviction and replay, truncation, batching) is
// tested against plain CPU sequences without a GPU.
type cpuDevice struct {
	e     *Engine
	first int // the split's first GPU layer, for ForwardHidden
	seqs  []*Sequence
	fail  error // returned by the next Forward, once
	calls int
}

func newCPUDevice(e *Engine, slots int) *cpuDevice {
	d := &cpuDevice{e: e}
	for range slots {
		d.seqs = append(d.seqs, e.NewSequence(0))
	}
	return d
}

func (d *cpuDevice) Name() string { return "fake" }
func (d *cpuDevice) Slots() int   { return len(d.seqs) }
func (d *cpuDevice) Context() int { return d.seqs[0].Context() }
func (d *cpuDevice) Close()       {}

func (d *cpuDevice) Timer() (deviceTimer, error) { return &wallTimer{}, nil }

// ForwardHidden runs the rows from their tokens and checks that hidden
// holds, row by row, the output of layer first-1 that this pass computed
// (a split engine's CPU layers, with their caches and replays, must hand
// over exactly that).
func (d *cpuDevice) ForwardHidden(rows []cuda.Row, hidden, logits []float32) error {
	h := d.e.Config.HiddenSize
	if len(hidden) < len(rows)*h {
		return fmt.Errorf("fake device: %d hidden floats for %d rows of %d", len(hidden), len(rows), h)
	}
	var want []float32
	d.e.SetProbe(probeFunc(func(ev BrickEvent) {
		if ev.Brick == BrickResidual && ev.Layer == d.first-1 {
			want = append(want[:0], ev.Outputs[0]...)
		}
	}))
	defer d.e.SetProbe(nil)
	if err := d.Forward(rows, logits); err != nil {
		return err
	}
	for i, w := range want {
		if hidden[i] != w {
			return fmt.Errorf("fake device: hidden state %d (row %d) is %g, layer %d gave %g", i, i/h, hidden[i], d.first-1, w)
		}
	}
	return nil
}

// Forward feeds each slot's run of rows as one entry of one batch, after
// cutting the slot's cache back to the run's first position.
func (d *cpuDevice) Forward(rows []cuda.Row, logits []float32) error {
	d.calls++
	if err := d.fail; err != nil {
		d.fail = nil
		return err
	}
	var entries []BatchEntry
	var want [][]bool
	for i := 0; i < len(rows); {
		r := rows[i]
		s := d.seqs[r.Slot]
		s.Truncate(r.Pos)
		if s.Pos() != r.Pos {
			return errors.New("fake device: a gap in the slot's positions")
		}
		b := BatchEntry{Seq: s, AllLogits: true}
		var w []bool
		for ; i < len(rows) && rows[i].Slot == r.Slot; i++ {
			b.Tokens = append(b.Tokens, rows[i].Token)
			w = append(w, rows[i].Logits)
		}
		entries, want = append(entries, b), append(want, w)
	}
	out, err := d.e.ForwardBatch(entries)
	if err != nil {
		return err
	}
	vocab := d.e.Config.VocabSize
	o := 0
	for i, w := range want {
		for j, ok := range w {
			if ok {
				o += copy(logits[o:], out[i][j*vocab:(j+1)*vocab])
			}
		}
	}
	return nil
}

type wallTimer struct{ t0 time.Time }

func (w *wallTimer) Start() error                 { w.t0 = time.Now(); return nil }
func (w *wallTimer) Stop() (time.Duration, error) { return time.Since(w.t0), nil }
func (w *wallTimer) Close()                       {}

// TestDeviceRoutingMatchesCPU runs sequences through an engine on a fake
// device of two slots (three sequences, so slots are taken and the
// evicted sequence's tokens fed again; truncation; batches) and checks
// every pass's logits against the same operations on CPU sequences.
func TestDeviceRoutingMatchesCPU(t *testing.T) {
	cpuEng := tinyEngine(t)
	for _, first := range []int{0, 1, cpuEng.Config.NumLayers - 1} {
		t.Run(fmt.Sprintf("first-layer-%d", first), func(t *testing.T) {
			fake := newCPUDevice(cpuEng, 2)
			fake.first = first
			testDeviceRouting(t, cpuEng, splitOf(cpuEng, fake, first))
		})
	}
}

// splitOf is base's model on d from decoder layer first on (0: all of it),
// base's CPU weights running the layers before.
func splitOf(base *Engine, d device, first int) *Engine {
	if first == 0 {
		return newOnDevice(base.Config, base.opts, d)
	}
	return &Engine{Config: base.Config, opts: base.opts, be: cpu.New(1), embed: base.embed, layers: base.layers,
		norm: base.norm, output: base.output, rope: base.rope,
		dev: &onDevice{d: d, first: first, owners: make([]*Sequence, d.Slots())}}
}

func testDeviceRouting(t *testing.T, cpuEng, dev *Engine) {
	ps := testref.HFOutputs(t)
	a, b, c := ps[0].TokenIDs, ps[1].TokenIDs, ps[2].TokenIDs
	type step struct {
		name     string
		seqs     []int // indexes of the three sequences
		tokens   [][]int
		truncate int // > 0: truncate seqs[0] to this before the step
	}
	steps := []step{
		{name: "prompt a", seqs: []int{0}, tokens: [][]int{a}},
		{name: "prompt b with a's next token", seqs: []int{1, 0}, tokens: [][]int{b, {a[0]}}},
		{name: "prompt c takes a's slot", seqs: []int{2}, tokens: [][]int{c}},
		{name: "a comes back, fed again", seqs: []int{0, 2}, tokens: [][]int{{b[1]}, {c[2]}}},
		{name: "b truncated", seqs: []int{1}, tokens: [][]int{{a[3], a[4]}}, truncate: 3},
	}
	ref := [3]*Sequence{cpuEng.NewSequence(0), cpuEng.NewSequence(0), cpuEng.NewSequence(0)}
	got := [3]*Sequence{dev.NewSequence(0), dev.NewSequence(0), dev.NewSequence(0)}
	for _, st := range steps {
		if st.truncate > 0 {
			ref[st.seqs[0]].Truncate(st.truncate)
			got[st.seqs[0]].Truncate(st.truncate)
		}
		var re, ge []BatchEntry
		for i, k := range st.seqs {
			re = append(re, BatchEntry{Seq: ref[k], Tokens: st.tokens[i]})
			ge = append(ge, BatchEntry{Seq: got[k], Tokens: st.tokens[i]})
		}
		want, err := cpuEng.ForwardBatch(re)
		if err != nil {
			t.Fatalf("%s: cpu: %v", st.name, err)
		}
		have, err := dev.ForwardBatch(ge)
		if err != nil {
			t.Fatalf("%s: device: %v", st.name, err)
		}
		for i := range want {
			scale := float64(maxAbs(want[i]))
			for j := range want[i] {
				if d := math.Abs(float64(have[i][j] - want[i][j])); d > 1e-5*scale {
					t.Fatalf("%s: entry %d logit %d: device %g, cpu %g", st.name, i, j, have[i][j], want[i][j])
				}
			}
			if k := st.seqs[i]; got[k].Pos() != ref[k].Pos() {
				t.Fatalf("%s: sequence %d at %d, want %d", st.name, k, got[k].Pos(), ref[k].Pos())
			}
		}
	}
}

func TestDeviceForwardErrors(t *testing.T) {
	cpuEng := tinyEngine(t)
	fake := newCPUDevice(cpuEng, 1)
	dev := newOnDevice(cpuEng.Config, cpuEng.opts, fake)
	ids := testref.HFOutputs(t)[0].TokenIDs
	s1 := dev.NewSequence(0)
	// A failed pass leaves the sequence where it was; the next pass feeds
	// its whole history again.
	if _, err := s1.Forward(ids[:4], false); err != nil {
		t.Fatal(err)
	}
	fake.fail = errors.New("device lost")
	if _, err := s1.Forward(ids[4:6], false); err == nil || s1.Pos() != 4 {
		t.Fatalf("failed pass: err %v, position %d; want an error and 4", err, s1.Pos())
	}
	got, err := s1.Forward(ids[4:], false)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cpuEng.NewSequence(0).Forward(ids, false)
	if err != nil {
		t.Fatal(err)
	}
	scale := float64(maxAbs(want))
	for j := range want {
		if d := math.Abs(float64(got[j] - want[j])); d > 1e-5*scale {
			t.Fatalf("after a failed pass, logit %d: %g, want %g", j, got[j], want[j])
		}
	}
	if n := s1.CacheBytes(); n <= 0 {
		t.Fatalf("device sequence's cache bytes %d", n)
	}
}

// TestDeviceProbe: a probe on a GPU engine sees each pass as one
// device_forward brick attributed to the pass's rows, then sampling.
func TestDeviceProbe(t *testing.T) {
	cpuEng := tinyEngine(t)
	dev := newOnDevice(cpuEng.Config, cpuEng.opts, newCPUDevice(cpuEng, 1))
	var seen []BrickEvent
	dev.SetProbe(probeFunc(func(ev BrickEvent) { seen = append(seen, ev) }))
	defer dev.SetProbe(nil)
	ids := testref.HFOutputs(t)[0].TokenIDs
	s := dev.NewSequence(0)
	if _, err := s.Forward(ids, false); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Brick != BrickDevice || seen[0].Rows != len(ids) || len(seen[0].Seqs) != len(ids) || seen[0].Seqs[0] != s {
		t.Fatalf("probe saw %+v, want one device_forward of %d rows of the sequence", seen, len(ids))
	}
	if dev.Device() != "fake" || cpuEng.Device() != "cpu" {
		t.Fatalf("devices %q, %q", dev.Device(), cpuEng.Device())
	}
}

func TestParseDevice(t *testing.T) {
	cases := []struct {
		in   string
		want Device
		ok   bool
	}{
		{"cpu", DeviceCPU, true}, {"CUDA", DeviceCUDA, true}, {"gpu", DeviceCUDA, true},
		{"auto", DeviceAuto, true}, {"metal", "", false}, {"", "", false},
	}
	for _, c := range cases {
		got, err := ParseDevice(c.in)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("ParseDevice(%q) = %q, %v; want %q, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestLoadFallsBackToCPU: without a usable GPU an explicit cuda request
// runs on the CPU with a notice naming cuda.Available's reason, auto runs
// there silently; with one, each runs there (a split of layers too) and
// answers as the CPU does.
func TestLoadFallsBackToCPU(t *testing.T) {
	m, err := format.Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ok, why := cuda.Available()
	cases := []struct {
		name   string
		off    Offload
		notice string // substring; "" for none
		gpu    bool   // runs on the GPU when one is usable
	}{
		{"cpu", Offload{Device: DeviceCPU, GPULayers: -1}, "", false},
		{"cuda", Offload{Device: DeviceCUDA, GPULayers: -1}, why, true},
		{"auto", Offload{Device: DeviceAuto, GPULayers: -1}, "", true},
		{"gpu-layers 0", Offload{Device: DeviceCUDA, GPULayers: 0}, "", false},
		{"split", Offload{Device: DeviceCUDA, GPULayers: 2}, why, true},
		{"split auto", Offload{Device: DeviceAuto, GPULayers: 3}, "", true},
		{"all layers", Offload{Device: DeviceCUDA, GPULayers: 4}, why, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, notice, err := Load(m, OptionsFor(m, 1), c.off)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			onGPU := ok && c.gpu
			if got := e.Device() != "cpu"; got != onGPU {
				t.Fatalf("device %q, want the GPU: %v", e.Device(), onGPU)
			}
			switch {
			case onGPU && notice != "":
				t.Fatalf("notice %q on the GPU", notice)
			case !onGPU && c.notice == "" && notice != "":
				t.Fatalf("notice %q, want none", notice)
			case !onGPU && c.notice != "" && (!strings.Contains(notice, c.notice) || !strings.Contains(notice, "CPU") || strings.Contains(notice, "\n")):
				t.Fatalf("notice %q, want one line naming %q and the CPU", notice, c.notice)
			}
			// Either way it computes: prompt 0's greedy first token.
			p := testref.HFOutputs(t)[0]
			logits, err := e.NewSequence(0).Forward(p.TokenIDs, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := argmax(logits); got != p.Greedy32[0] {
				t.Fatalf("first greedy token %d, want %d", got, p.Greedy32[0])
			}
		})
	}
}

// constDevice answers every row with logits that favour the next token id,
// allocating nothing: the engine's own device path is what allocations
// are counted of.
type constDevice struct{ vocab int }

func (d constDevice) Name() string                { return "const" }
func (d constDevice) Slots() int                  { return 1 }
func (d constDevice) Context() int                { return 256 }
func (d constDevice) Close()                      {}
func (d constDevice) Timer() (deviceTimer, error) { return &wallTimer{}, nil }

func (d constDevice) ForwardHidden(rows []cuda.Row, _, logits []float32) error {
	return d.Forward(rows, logits)
}

func (d constDevice) Forward(rows []cuda.Row, logits []float32) error {
	o := 0
	for _, r := range rows {
		if r.Logits {
			clear(logits[o : o+d.vocab])
			logits[o+(r.Token+1)%d.vocab] = 1
			o += d.vocab
		}
	}
	return nil
}

// TestDeviceDecodeAllocatesNothing: decode steps on a GPU engine make no
// heap allocation of the engine's own (a fake device stands for the GPU;
// BenchmarkDecodeGPU shows the CUDA backend's own allocations).
func TestDeviceDecodeAllocatesNothing(t *testing.T) {
	cpuEng := tinyEngine(t)
	e := newOnDevice(cpuEng.Config, cpuEng.opts, constDevice{cpuEng.Config.VocabSize})
	d := newDecoder(t, e)
	d.step(t)
	const steps, allowed = 200, 2
	if n := decodeMallocs(t, d, steps); n > allowed {
		t.Errorf("%d allocations in %d decode steps, want at most %d", n, steps, allowed)
	}
}

// BenchmarkDecodeGPU measures one decode step through the engine on the
// GPU (a token in, its logits copied back into the previous step's
// buffer) for each shared file; -benchmem shows the allocations per token.
// It skips without a usable GPU.
func BenchmarkDecodeGPU(b *testing.B) {
	if ok, why := cuda.Available(); !ok {
		b.Skip("no usable GPU: " + why)
	}
	for _, dm := range decodeModels {
		b.Run(dm.name, func(b *testing.B) {
			path := testref.ModelDir(b)
			if dm.path != "" {
				path = testref.Path(b, "models", "qwen2-tiny-coder-gguf", dm.path)
			}
			m, err := format.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			e, notice, err := Load(m, OptionsFor(m, 0), Offload{Device: DeviceCUDA, GPULayers: -1, Context: 256})
			if err != nil || notice != "" {
				b.Fatalf("load on the GPU: %v %s", err, notice)
			}
			defer e.Close()
			d := newDecoder(b, e)
			b.ReportAllocs()
			for b.Loop() {
				d.step(b)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

func TestDeviceBytes(t *testing.T) {
	for _, c := range []struct {
		name  string
		layer int
		ok    bool
	}{
		{"model.layers.12.mlp.up_proj.weight", 12, true},
		{"model.layers.0.input_layernorm.weight", 0, true},
		{"model.embed_tokens.weight", 0, false},
		{"model.layers.x.mlp", 0, false},
		{"lm_head.weight", 0, false},
	} {
		if l, ok := layerOf(c.name); l != c.layer || ok != c.ok {
			t.Errorf("layerOf(%q) = %d, %v; want %d, %v", c.name, l, ok, c.layer, c.ok)
		}
	}
	m, err := format.Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	opts := OptionsFor(m, 1)
	var weights, layer0 uint64
	for name, tt := range m.Tensors {
		weights += uint64(len(tt.Data))
		if l, ok := layerOf(name); ok && l == 0 {
			layer0 += uint64(len(tt.Data))
		}
	}
	// Q8_0 GGUF: F16 KV cache, 4 layers of 64-wide keys and values.
	kv := uint64(2 * 100 * 4 * 2 * 64 * 2)
	if got, want := deviceBytes(m, opts, 2, 100, 0), weights+kv+256<<20; got != want {
		t.Errorf("whole model: %d bytes, want %d", got, want)
	}
	if got, want := deviceBytes(m, opts, 2, 100, 1), weights-layer0+kv*3/4+256<<20; got != want {
		t.Errorf("layers 1..: %d bytes, want %d", got, want)
	}
}
