package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/sample"
)

// TestDeviceMoreSequencesThanSlots decodes several prompts together,
// one batch a step, on fake devices of fewer slots than sequences: every
// step runs as passes of at most the slots' count, sequences take each
// other's slots and are fed again, and each still gives transformers'
// greedy continuation.
func TestDeviceMoreSequencesThanSlots(t *testing.T) {
	cpuEng := tinyEngine(t)
	var ps []testref.Prompt
	for _, p := range testref.HFOutputs(t) {
		if len(p.TokenIDs) < 40 {
			ps = append(ps, p)
		}
	}
	if len(ps) < 4 {
		t.Fatalf("%d short prompts in hf_outputs.json, want at least 4", len(ps))
	}
	const steps = 6
	for _, slots := range []int{1, 4, len(ps)} {
		t.Run(fmt.Sprintf("%d-slots-%d-sequences", slots, len(ps)), func(t *testing.T) {
			fake := newCPUDevice(cpuEng, slots)
			dev := newOnDevice(cpuEng.Config, cpuEng.opts, fake)
			entries := make([]BatchEntry, len(ps))
			for i, p := range ps {
				entries[i] = BatchEntry{Seq: dev.NewSequence(0), Tokens: p.TokenIDs}
			}
			for step := range steps {
				calls := fake.calls
				out, err := dev.ForwardBatch(entries)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if got, want := fake.calls-calls, (len(ps)+slots-1)/slots; got != want {
					t.Fatalf("step %d: %d device passes, want %d", step, got, want)
				}
				for i, p := range ps {
					next := sample.Argmax(out[i])
					if want := p.Greedy32[step]; next != want {
						t.Fatalf("%s: greedy step %d: %d, transformers %d", p.Name, step, next, want)
					}
					entries[i].Tokens = []int{next}
				}
			}
		})
	}
}

// TestPlanSlots: the device's KV cache slots follow the requested count
// and context, a KV budget cuts them to what it holds, and a budget or a
// device too small for them is an error naming the numbers, while weights
// too large for the device fall back to the CPU.
func TestPlanSlots(t *testing.T) {
	m, err := format.Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	opts := OptionsFor(m, 1)
	maxCtx := m.Config.MaxPositions
	if maxCtx < 256 {
		t.Fatalf("model context %d, want at least 256", maxCtx)
	}
	// Q8_0 GGUF: F16 KV cache, 4 layers of 64-wide keys and values.
	perPos := uint64(4 * 2 * 64 * 2)
	slot := 256 * perPos // a slot of 256 positions, all layers
	weights := deviceBytes(m, opts, 0, 256, 0)
	cases := []struct {
		name      string
		off       Offload
		first     int
		free      uint64
		slots     int
		ctx       int
		slotBytes uint64
		tooBig    bool
		err       []string // substrings of the error
	}{
		{name: "as asked", off: Offload{Slots: 4, Context: 256}, slots: 4, ctx: 256, slotBytes: slot},
		{name: "at least one", off: Offload{Context: 256}, slots: 1, ctx: 256, slotBytes: slot},
		{name: "model's context", off: Offload{Slots: 2}, slots: 2, ctx: maxCtx, slotBytes: uint64(maxCtx) * perPos},
		{name: "context capped", off: Offload{Slots: 2, Context: maxCtx + 1}, slots: 2, ctx: maxCtx, slotBytes: uint64(maxCtx) * perPos},
		{name: "split", off: Offload{Slots: 2, Context: 256}, first: 1, slots: 2, ctx: 256, slotBytes: slot * 3 / 4},
		{name: "budget cuts slots", off: Offload{Slots: 8, Context: 256, KVBudget: int64(slot*5/2) + 7}, slots: 2, ctx: 256, slotBytes: slot},
		{name: "budget exact", off: Offload{Slots: 8, Context: 256, KVBudget: int64(3 * slot)}, slots: 3, ctx: 256, slotBytes: slot},
		{name: "budget above parallel", off: Offload{Slots: 4, Context: 256, KVBudget: int64(100 * slot)}, slots: 4, ctx: 256, slotBytes: slot},
		{name: "budget below a slot", off: Offload{Slots: 4, Context: 256, KVBudget: int64(slot - 1)},
			err: []string{"KV budget of 0.2 MiB", "256 tokens", "0.2 MiB over 4 layers", "--kv-budget"}},
		{name: "fits the device", off: Offload{Slots: 4, Context: 256}, free: weights + 4*slot, slots: 4, ctx: 256, slotBytes: slot},
		{name: "slots beyond the device", off: Offload{Slots: 4, Context: 256}, free: weights + 2*slot + slot/2,
			err: []string{"4 GPU KV caches of 256 tokens need 1.0 MiB", "the GPU has", "2 fit", "--parallel"}},
		{name: "budget fits the device", off: Offload{Slots: 4, Context: 256, KVBudget: int64(2 * slot)}, free: weights + 2*slot + slot/2,
			slots: 2, ctx: 256, slotBytes: slot},
		{name: "weights beyond the device", off: Offload{Slots: 4, Context: 256}, free: weights / 2, slots: 4, ctx: 256, slotBytes: slot, tooBig: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, tooBig, err := planSlots(m, opts, c.off, c.first, c.free)
			if len(c.err) > 0 {
				if err == nil {
					t.Fatalf("plan %+v, want an error", p)
				}
				for _, w := range c.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tooBig != "") != c.tooBig || (c.tooBig && !strings.Contains(tooBig, "MiB free")) {
				t.Errorf("too big: %q, want %v", tooBig, c.tooBig)
			}
			if want := (slotPlan{slots: c.slots, ctx: c.ctx, slotBytes: c.slotBytes}); p != want {
				t.Errorf("plan %+v, want %+v", p, want)
			}
		})
	}
}

// TestDeviceCache: the engine reports its device's slots, their context
// and their bytes, and nothing on the CPU.
func TestDeviceCache(t *testing.T) {
	cpuEng := tinyEngine(t)
	if s, c, b := cpuEng.DeviceCache(); s != 0 || c != 0 || b != 0 {
		t.Fatalf("CPU engine: %d slots of %d, %d bytes; want zeros", s, c, b)
	}
	fake := newCPUDevice(cpuEng, 3)
	dev := newOnDevice(cpuEng.Config, cpuEng.opts, fake)
	cfg := cpuEng.Config
	s, c, b := dev.DeviceCache()
	elem := int64(4)
	if cpuEng.opts.KVCacheF16 {
		elem = 2
	}
	want := 3 * int64(fake.Context()) * int64(cfg.NumLayers) * 2 * int64(cfg.NumKVHeads*cfg.HeadDim) * elem
	if s != 3 || c != fake.Context() || b != want {
		t.Fatalf("device: %d slots of %d, %d bytes; want 3 of %d, %d", s, c, b, fake.Context(), want)
	}
}
