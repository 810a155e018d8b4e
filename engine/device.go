package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/model"
)

// Device names where an engine computes, as the --device flag spells it.
type Device string

// The devices.
const (
	DeviceCPU  Device = "cpu"
	DeviceCUDA Device = "cuda"
	// DeviceAuto picks CUDA when a GPU is usable and the model fits in its
	// memory, else the CPU.
	DeviceAuto Device = "auto"
)

// ParseDevice reads a --device value (case-insensitive; "gpu" is cuda).
func ParseDevice(s string) (Device, error) {
	switch d := Device(strings.ToLower(strings.TrimSpace(s))); d {
	case DeviceCPU, DeviceCUDA, DeviceAuto:
		return d, nil
	case "gpu":
		return DeviceCUDA, nil
	}
	return "", fmt.Errorf("unknown device %q: cpu, cuda or auto", s)
}

// Offload says where Load puts a model.
type Offload struct {
	Device Device // "" is DeviceCPU
	// GPULayers is how many decoder layers run on the GPU, counted from the
	// last as llama.cpp's -ngl counts them; < 0 means all. 0 keeps the
	// model on the CPU. With fewer than all, the CPU runs the embedding and
	// the layers before them and hands the GPU their hidden states; the
	// output head runs on the GPU.
	GPULayers int
	// Slots is how many sequences may keep their KV cache on the device at
	// once (the server's parallel requests; < 1: 1). Sequences beyond it
	// take the least recently used slot and have their tokens fed again
	// when they come back.
	Slots int
	// Context is each slot's KV cache in positions (< 1: the model's
	// context length).
	Context int
	// KVBudget, when > 0, is the most memory in bytes the device's KV
	// caches may take together: the device gets at most KVBudget / (one
	// slot's cache of Context positions) slots, fewer than Slots when
	// that holds fewer. A budget that holds no slot is an error.
	KVBudget int64
}

// Load binds m to an engine on the device off asks for. A CUDA request that
// cannot be met (no usable GPU, a model too large for the device, a failed
// upload) runs on the CPU; the returned notice then says why in one line,
// for stderr. The notice is empty when the engine runs where it was asked
// to, and when DeviceAuto chose the CPU because no GPU is usable.
func Load(m *model.Model, opts Options, off Offload) (*Engine, string, error) {
	dev := off.Device
	if dev == "" {
		dev = DeviceCPU
	}
	notice := ""
	if dev != DeviceCPU && off.GPULayers != 0 {
		d, first, why, err := openGPU(m, opts, off)
		switch {
		case err != nil:
			return nil, "", err
		case d != nil && first > 0:
			e, err := newSplit(m, opts, d, first)
			if err != nil {
				d.Close()
			}
			return e, "", err
		case d != nil:
			return newOnDevice(m.Config, opts, d), "", nil
		case dev == DeviceCUDA || why.always:
			notice = fmt.Sprintf("apr: %s; running on the CPU", why.reason)
		}
	}
	e, err := New(m.Config, m.Tensors, opts)
	return e, notice, err
}

// fallback is why openGPU did not place a model on the GPU.
type fallback struct {
	reason string
	// always: worth a notice even when the device was chosen
	// automatically (the GPU exists but the model did not go there).
	always bool
}

// openGPU uploads m's layers from first on (0 unless off asks for a split)
// and the output head to the GPU when it is usable and they fit; it returns
// a nil device and the reason when not. An error is returned only for a
// bad request.
func openGPU(m *model.Model, opts Options, off Offload) (device, int, fallback, error) {
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return nil, 0, fallback{}, err
	}
	first := 0
	if off.GPULayers > 0 && off.GPULayers < cfg.NumLayers {
		first = cfg.NumLayers - off.GPULayers
	}
	if ok, reason := cuda.Available(); !ok {
		return nil, 0, fallback{reason: "no usable GPU: " + reason}, nil
	}
	free, _, err := cuda.MemInfo()
	if err != nil {
		free = 0 // unknown: cuda.Load's allocations decide
	}
	plan, tooBig, err := planSlots(m, opts, off, first, free)
	switch {
	case err != nil:
		return nil, 0, fallback{}, err
	case tooBig != "":
		return nil, 0, fallback{reason: tooBig, always: true}, nil
	}
	g, err := cuda.Load(m, cuda.Options{Context: plan.ctx, Numerics: opts.Numerics, Slots: plan.slots, FirstLayer: first})
	if err != nil {
		return nil, 0, fallback{reason: err.Error(), always: true}, nil
	}
	name := "cuda (" + g.Device().Name() + ")"
	if first > 0 {
		name += fmt.Sprintf(", layers %d-%d; cpu: embedding and layers 0-%d", first, cfg.NumLayers-1, first-1)
	}
	return &cudaDevice{Model: g, name: name}, first, fallback{}, nil
}

// slotPlan is the KV caches a device gets: slots caches of ctx positions,
// slotBytes each (over the device's layers).
type slotPlan struct {
	slots, ctx int
	slotBytes  uint64
}

// planSlots sizes the KV caches of m on a device from decoder layer first
// on: off.Slots slots (at least 1) of off.Context positions (the model's
// context when < 1 or beyond it; 4096 when the model names none, as
// cuda.Load counts), cut to what off.KVBudget holds. free is the device's
// free memory in bytes (0: unknown, not checked). A budget that holds no
// slot, and slots that do not fit beside weights that do, are errors
// naming the numbers; when the weights do not fit with one slot, tooBig
// says so (the model runs on the CPU).
func planSlots(m *model.Model, opts Options, off Offload, first int, free uint64) (p slotPlan, tooBig string, err error) {
	cfg := m.Config
	ctx := off.Context
	if ctx < 1 || (cfg.MaxPositions > 0 && ctx > cfg.MaxPositions) {
		ctx = cfg.MaxPositions
	}
	if ctx < 1 {
		ctx = 4096
	}
	layers := cfg.NumLayers - first
	p = slotPlan{slots: max(off.Slots, 1), ctx: ctx, slotBytes: uint64(cacheBytes(cfg, opts, ctx, layers))}
	if b := off.KVBudget; b > 0 {
		n := uint64(b) / p.slotBytes
		if n < 1 {
			return p, "", fmt.Errorf("a KV budget of %.1f MiB holds no GPU KV cache of %d tokens (%.1f MiB over %d layers): raise --kv-budget to at least that or lower --ctx-size",
				mibs(uint64(b)), ctx, mibs(p.slotBytes), layers)
		}
		p.slots = int(min(uint64(p.slots), n))
	}
	if free == 0 {
		return p, "", nil
	}
	if one := deviceBytes(m, opts, 1, ctx, first); one > free {
		return p, fmt.Sprintf("the model needs about %d MiB of GPU memory (weights and a KV cache of %d positions), the GPU has %d MiB free",
			one>>20, ctx, free>>20), nil
	}
	if need := deviceBytes(m, opts, p.slots, ctx, first); need > free {
		weights := deviceBytes(m, opts, 0, ctx, first)
		return p, "", fmt.Errorf("%d GPU KV caches of %d tokens need %.1f MiB (%.1f MiB each) beside the model's %.1f MiB, the GPU has %.1f MiB free: %d fit; lower --parallel or --ctx-size, or set --kv-budget",
			p.slots, ctx, mibs(need-weights), mibs(p.slotBytes), mibs(weights), mibs(free), (free-weights)/p.slotBytes)
	}
	return p, "", nil
}

// mibs converts bytes to MiB for messages.
func mibs(b uint64) float64 { return float64(b) / (1 << 20) }

// deviceBytes estimates the GPU memory m takes from decoder layer first on
// with slots KV caches of ctx positions: those layers' weights and the
// others outside the layers as stored, the caches, and 256 MiB for the
// logits and activations of a prompt chunk.
func deviceBytes(m *model.Model, opts Options, slots, ctx, first int) uint64 {
	var n uint64
	for name, t := range m.Tensors {
		if layer, ok := layerOf(name); !ok || layer >= first {
			n += uint64(len(t.Data))
		}
	}
	cfg := m.Config
	n += uint64(slots) * uint64(cacheBytes(cfg, opts, ctx, cfg.NumLayers-first))
	return n + 256<<20
}

// layerOf is the decoder layer a canonical tensor name belongs to.
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		return 0, false
	}
	i, _, ok := strings.Cut(rest, ".")
	n, err := strconv.Atoi(i)
	return n, ok && err == nil
}

// device runs whole forward passes away from the CPU engine: the GPU
// (cuda.Model) behind the same Sequence and ForwardBatch API. A fake of it
// tests the routing without a GPU.
type device interface {
	// Name says where it computes, for --verbose and traces.
	Name() string
	// Slots is how many sequences have a KV cache on the device.
	Slots() int
	// Context is each slot's KV cache in positions.
	Context() int
	// Forward runs rows (increasing positions per slot, causal among a
	// slot's rows) and writes vocab logits for each row with Logits set,
	// in row order.
	Forward(rows []cuda.Row, logits []float32) error
	// ForwardHidden is Forward from the hidden states (HiddenSize floats a
	// row) entering the device's first layer, for a split of layers.
	ForwardHidden(rows []cuda.Row, hidden, logits []float32) error
	// Timer measures the device time of the work between its Start and
	// Stop (CUDA events).
	Timer() (deviceTimer, error)
	Close()
}

// deviceTimer is cuda.Timer.
type deviceTimer interface {
	Start() error
	Stop() (time.Duration, error)
	Close()
}

// cudaDevice is a model resident on the GPU.
type cudaDevice struct {
	*cuda.Model
	name string
}

func (c *cudaDevice) Name() string { return c.name }

func (c *cudaDevice) Timer() (deviceTimer, error) { return cuda.NewTimer() }

// Device says where the engine computes: "cpu", or "cuda (device name)".
func (e *Engine) Device() string {
	if e.dev != nil {
		return e.dev.d.Name()
	}
	return string(DeviceCPU)
}
