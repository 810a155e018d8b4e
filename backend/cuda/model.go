package cuda

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// Options configure a device-resident Model.
type Options struct {
	// Context is the KV cache's capacity in positions (< 1: 4096, capped
	// at the model's context length).
	Context int
	// Numerics are the CPU engine's: the device follows the same rounding
	// (for FlashAttention, ggml's one-row kernel, and the tiled one for
	// positions fed as part of a pass of 64 rows or more: SetBatchRows).
	cpu.Numerics
	// NoGraph launches each step's kernels one by one instead of replaying
	// the step captured once as a CUDA graph.
	NoGraph bool
	// Slots is the number of sequences with their own device KV cache of
	// Context positions (< 1: 1).
	Slots int
}

// Row is one token of a forward pass.
type Row struct {
	Slot, Token, Pos int
	Logits           bool // return this row's logits
}

// OptionsFor returns the numerics of m's reference implementation, as the
// CPU engine chooses them (cpu.NumericsFor).
func OptionsFor(m *model.Model, ctx int) Options {
	return Options{Context: ctx, Numerics: cpu.NumericsFor(m)}
}

// layer is one decoder layer's weights on the device.
type layer struct {
	attnNorm, mlpNorm devptr
	q, k, v, o        *matrix
	qb, kb, vb        devptr // 0 without biases (LLaMA)
	gate, up, down    *matrix
	kc, vc            devptr // this layer's KV caches, slot after slot
}

// Model is a Qwen2/LLaMA model whose weights, KV cache (one sequence) and
// activations live on the GPU; Decode runs one token's forward pass there.
// A Model is not safe for concurrent use.
type Model struct {
	Config *model.Config
	dev    *Device
	opts   Options
	ctx    int
	slots  int
	// slotBytes is the size of one slot's keys (or values) in one layer.
	slotBytes int

	embed, output *matrix
	embedHost     *tensor.Tensor // for embedding types without a row kernel
	rowHost       []float32
	norm          devptr
	layers        []layer
	invFreq       devptr
	thetaScale    float32

	// activations
	x, xn, q, k, v, attn, gate, up, logits, scores devptr
	actQ8_0, actQ8K, best                          devptr

	// The step as a CUDA graph: its kernels read the token and position
	// from state (two int32), written before each replay.
	state     devptr
	stateHost *[3]int32 // token, position, rows
	execs     []uintptr // per slot, captured on first use
	rows      int

	allocs []devptr
}

// Load uploads m's weights to the GPU (once; they stay resident) and
// allocates a KV cache of opts.Context positions for one sequence.
func Load(m *model.Model, opts Options) (*Model, error) {
	d, err := Open()
	if err != nil {
		return nil, err
	}
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx := opts.Context
	if ctx < 1 {
		ctx = 4096
	}
	if cfg.MaxPositions > 0 && ctx > cfg.MaxPositions {
		ctx = cfg.MaxPositions
	}
	unlock := d.bind()
	defer unlock()
	slots := max(opts.Slots, 1)
	g := &Model{Config: cfg, dev: d, opts: opts, ctx: ctx, slots: slots, stateHost: new([3]int32), rows: 1,
		execs: make([]uintptr, slots)}
	if err := g.load(m); err != nil {
		g.freeAll()
		return nil, fmt.Errorf("cuda: load %s: %w", m.Path, err)
	}
	return g, nil
}

// Context is the KV cache's capacity in positions.
func (g *Model) Context() int { return g.ctx }

// Device is the GPU the model lives on.
func (g *Model) Device() *Device { return g.dev }

// Slots is the number of sequences with their own KV cache.
func (g *Model) Slots() int { return g.slots }

func (g *Model) track(p devptr, err error) (devptr, error) {
	if err == nil {
		g.allocs = append(g.allocs, p)
	}
	return p, err
}

// loader binds tensors by canonical name, remembering the first error.
type loader struct {
	g   *Model
	m   *model.Model
	err error
}

func (l *loader) tensor(name string, shape ...int) *tensor.Tensor {
	if l.err != nil {
		return nil
	}
	t, ok := l.m.Tensors[name]
	if !ok {
		l.err = fmt.Errorf("missing tensor %s", name)
		return nil
	}
	if len(t.Shape) != len(shape) {
		l.err = fmt.Errorf("tensor %s: shape %v, but the config needs %v", name, t.Shape, shape)
		return nil
	}
	for i := range shape {
		if t.Shape[i] != shape[i] {
			l.err = fmt.Errorf("tensor %s: shape %v, but the config needs %v", name, t.Shape, shape)
			return nil
		}
	}
	return t
}

func (l *loader) matrix(name string, rows, cols int) *matrix {
	t := l.tensor(name, rows, cols)
	if t == nil {
		return nil
	}
	w, err := l.g.dev.uploadMatrix(t)
	if err != nil {
		l.err = err
		return nil
	}
	l.g.allocs = append(l.g.allocs, w.ptr)
	return w
}

func (l *loader) vector(name string, n int) devptr {
	t := l.tensor(name, n)
	if t == nil {
		return 0
	}
	v, err := cpu.Vector(t)
	if err != nil {
		l.err = err
		return 0
	}
	p, err := l.g.track(l.g.dev.uploadF32(v))
	if err != nil {
		l.err = fmt.Errorf("tensor %s: %w", name, err)
	}
	return p
}

func (g *Model) load(m *model.Model) error {
	cfg := g.Config
	h, qDim, kvDim, ffn := cfg.Dims()
	l := &loader{g: g, m: m}
	g.embed = l.matrix(model.TokenEmbd, cfg.VocabSize, h)
	if l.err != nil {
		return l.err
	}
	if _, ok := getRowKernels[g.embed.dt]; !ok {
		g.embedHost = m.Tensors[model.TokenEmbd]
		g.rowHost = make([]float32, h)
	}
	g.norm = l.vector(model.OutputNorm, h)
	if _, ok := m.Tensors[model.Output]; ok {
		g.output = l.matrix(model.Output, cfg.VocabSize, h)
	} else {
		g.output = g.embed
	}
	f16 := g.opts.KVCacheF16
	elem := 4
	if f16 {
		elem = 2
	}
	g.slotBytes = g.ctx * kvDim * elem
	for i := 0; i < cfg.NumLayers; i++ {
		ly := layer{
			attnNorm: l.vector(model.Layer(i, model.AttnNorm), h),
			mlpNorm:  l.vector(model.Layer(i, model.FFNNorm), h),
			q:        l.matrix(model.Layer(i, model.AttnQ), qDim, h),
			k:        l.matrix(model.Layer(i, model.AttnK), kvDim, h),
			v:        l.matrix(model.Layer(i, model.AttnV), kvDim, h),
			o:        l.matrix(model.Layer(i, model.AttnO), h, qDim),
			gate:     l.matrix(model.Layer(i, model.FFNGate), ffn, h),
			up:       l.matrix(model.Layer(i, model.FFNUp), ffn, h),
			down:     l.matrix(model.Layer(i, model.FFNDown), h, ffn),
		}
		if cfg.AttentionBias {
			ly.qb = l.vector(model.Layer(i, model.AttnQB), qDim)
			ly.kb = l.vector(model.Layer(i, model.AttnKB), kvDim)
			ly.vb = l.vector(model.Layer(i, model.AttnVB), kvDim)
		}
		if l.err != nil {
			return l.err
		}
		var err error
		if ly.kc, err = g.track(g.dev.alloc(g.slots * g.slotBytes)); err != nil {
			return err
		}
		if ly.vc, err = g.track(g.dev.alloc(g.slots * g.slotBytes)); err != nil {
			return err
		}
		g.layers = append(g.layers, ly)
	}
	if l.err != nil {
		return l.err
	}
	// Rotary frequencies as the CPU backend computes them.
	dim := cfg.HeadDim
	inv := make([]float32, dim/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(cfg.RopeTheta, float64(float32(2*i)/float32(dim))))
	}
	g.thetaScale = float32(math.Pow(cfg.RopeTheta, -2/float64(dim)))
	widest := max(h, qDim, ffn)
	q8_0, err := tensor.Q8_0.RowBytes(widest / 32 * 32)
	if err != nil {
		return err
	}
	q8k, err := tensor.Q8_K.RowBytes(widest / 256 * 256)
	if err != nil {
		return err
	}
	bufs := []struct {
		p *devptr
		n int
	}{
		{&g.x, 4 * h}, {&g.xn, 4 * h}, {&g.q, 4 * qDim}, {&g.k, 4 * kvDim}, {&g.v, 4 * kvDim},
		{&g.attn, 4 * qDim}, {&g.gate, 4 * ffn}, {&g.up, 4 * ffn}, {&g.logits, 4 * cfg.VocabSize},
		{&g.scores, 4 * cfg.NumHeads * g.ctx}, {&g.actQ8_0, q8_0}, {&g.actQ8K, q8k}, {&g.best, 4},
		{&g.state, 12},
	}
	for _, b := range bufs {
		if *b.p, err = g.track(g.dev.alloc(b.n)); err != nil {
			return err
		}
	}
	if g.invFreq, err = g.track(g.dev.uploadF32(inv)); err != nil {
		return err
	}
	return g.dev.sync()
}

// Close frees the model's device memory.
func (g *Model) Close() {
	unlock := g.dev.bind()
	defer unlock()
	g.freeAll()
}

func (g *Model) freeAll() {
	for i, e := range g.execs {
		if e != 0 {
			g.dev.drv.cuGraphExecDestroy(e)
			g.execs[i] = 0
		}
	}
	for _, p := range g.allocs {
		g.dev.free(p)
	}
	g.allocs = nil
}

// prepare quantizes x (n floats) into every activation encoding that the
// matrices ws read, once each.
func (g *Model) prepare(x devptr, n int, ws ...*matrix) error {
	var did8, didK bool
	for _, w := range ws {
		switch actType(w.dt) {
		case tensor.Q8_0:
			if !did8 {
				did8 = true
				if err := g.dev.quantizeAct(tensor.Q8_0, x, g.actQ8_0, n); err != nil {
					return err
				}
			}
		case tensor.Q8_K:
			if !didK {
				didK = true
				if err := g.dev.quantizeAct(tensor.Q8_K, x, g.actQ8K, n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// mul runs y (+)= w·x (+ bias) after prepare(x, ...).
func (g *Model) mul(w *matrix, x, y, bias devptr, acc bool) error {
	act := x
	switch actType(w.dt) {
	case tensor.Q8_0:
		act = g.actQ8_0
	case tensor.Q8_K:
		act = g.actQ8K
	}
	return g.dev.matvec(w, act, y, bias, acc)
}

// step runs one token's forward pass at position pos of slot's cache,
// leaving the logits in g.logits and their argmax in g.best: by replaying
// the slot's captured graph (capturing it on the first call), or kernel by
// kernel with NoGraph or an embedding that is decoded on the host.
func (g *Model) step(slot, token, pos int) error {
	cfg := g.Config
	if token < 0 || token >= cfg.VocabSize {
		return fmt.Errorf("cuda: decode: token id %d outside the vocabulary (%d)", token, cfg.VocabSize)
	}
	if pos < 0 || pos >= g.ctx {
		return fmt.Errorf("cuda: decode: position %d outside the context of %d", pos, g.ctx)
	}
	if slot < 0 || slot >= g.slots {
		return fmt.Errorf("cuda: decode: slot %d outside 0..%d", slot, g.slots-1)
	}
	d := g.dev
	if g.opts.NoGraph || g.embedHost != nil {
		return g.enqueue(slot, 0, 0, 0, token, pos, g.rows)
	}
	g.stateHost[0], g.stateHost[1], g.stateHost[2] = int32(token), int32(pos), int32(g.rows)
	r := d.drv.cuMemcpyHtoDAsync(g.state, unsafe.Pointer(g.stateHost), 12, d.stream)
	if err := d.drv.check("cuMemcpyHtoDAsync (token, position, rows)", r); err != nil {
		return err
	}
	if g.execs[slot] == 0 {
		if err := g.capture(slot); err != nil {
			return err
		}
	}
	return d.drv.check("cuGraphLaunch", d.drv.cuGraphLaunch(g.execs[slot], d.stream))
}

// capture records slot's step kernels, reading token and position from
// g.state, as a CUDA graph and instantiates it.
func (g *Model) capture(slot int) error {
	d := g.dev
	const captureThreadLocal = 1
	if err := d.drv.check("cuStreamBeginCapture", d.drv.cuStreamBeginCapture(d.stream, captureThreadLocal)); err != nil {
		return err
	}
	errEnq := g.enqueue(slot, g.state, g.state+4, g.state+8, 0, 0, 1)
	var graph uintptr
	errEnd := d.drv.check("cuStreamEndCapture", d.drv.cuStreamEndCapture(d.stream, &graph))
	if err := errors.Join(errEnq, errEnd); err != nil {
		if graph != 0 {
			d.drv.cuGraphDestroy(graph)
		}
		return fmt.Errorf("cuda: capture the decode step: %w", err)
	}
	defer d.drv.cuGraphDestroy(graph)
	return d.drv.check("cuGraphInstantiate", d.drv.cuGraphInstantiate(&g.execs[slot], graph, 0))
}

// enqueue issues one token's forward pass on slot's cache and the argmax
// of its logits. With tokp, posp and rowsp not 0 the kernels read the
// token, position and the reference's rows per pass from there (a captured
// graph); otherwise token, pos and rows are passed by value.
func (g *Model) enqueue(slot int, tokp, posp, rowsp devptr, token, pos, rows int) error {
	cfg := g.Config
	h, qDim, kvDim, ffn := cfg.Dims()
	d := g.dev
	eps := float32(cfg.RMSNormEps)
	style := 0
	if g.opts.Rope == cpu.RopeGGML {
		style = 1
	}
	scale := float32(1 / math.Sqrt(float64(cfg.HeadDim)))
	f16 := g.opts.KVCacheF16
	fa := g.opts.FlashAttention && f16
	ggml := g.opts.GGMLOps
	if g.embedHost != nil {
		row := g.embedHost.Row(token)
		if err := quant.Dequantize(g.embedHost.DType, row, g.rowHost); err != nil {
			return fmt.Errorf("cuda: embedding row %d: %w", token, err)
		}
		r := d.drv.cuMemcpyHtoDAsync(g.x, unsafe.Pointer(&g.rowHost[0]), uintptr(4*h), d.stream)
		if err := d.drv.check("cuMemcpyHtoDAsync", r); err != nil {
			return err
		}
	} else if err := d.getRow(g.embed, g.x, tokp, token); err != nil {
		return err
	}
	so := devptr(slot * g.slotBytes)
	for li := range g.layers {
		l := &g.layers[li]
		kc, vc := l.kc+so, l.vc+so
		err := errors.Join(
			d.rmsNorm(g.x, l.attnNorm, g.xn, h, eps, ggml),
			g.prepare(g.xn, h, l.q, l.k, l.v),
			g.mul(l.q, g.xn, g.q, l.qb, false),
			g.mul(l.k, g.xn, g.k, l.kb, false),
			g.mul(l.v, g.xn, g.v, l.vb, false),
			d.rope(g.q, g.invFreq, cfg.NumHeads, cfg.HeadDim, posp, pos, g.thetaScale, style),
			d.rope(g.k, g.invFreq, cfg.NumKVHeads, cfg.HeadDim, posp, pos, g.thetaScale, style),
			d.kvStore(g.k, g.v, kc, vc, posp, pos, kvDim, f16),
			d.attention(g.q, kc, vc, g.attn, g.scores, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, posp, pos+1, g.ctx, scale, f16, fa, rowsp, rows),
			g.prepare(g.attn, qDim, l.o),
			g.mul(l.o, g.attn, g.x, 0, true),
			d.rmsNorm(g.x, l.mlpNorm, g.xn, h, eps, ggml),
			g.prepare(g.xn, h, l.gate, l.up),
			g.mul(l.gate, g.xn, g.gate, 0, false),
			g.mul(l.up, g.xn, g.up, 0, false),
			d.siluMul(g.gate, g.up, ffn, ggml),
			g.prepare(g.gate, ffn, l.down),
			g.mul(l.down, g.gate, g.x, 0, true),
		)
		if err != nil {
			return fmt.Errorf("cuda: decode layer %d: %w", li, err)
		}
	}
	return errors.Join(
		d.rmsNorm(g.x, g.norm, g.xn, h, eps, ggml),
		g.prepare(g.xn, h, g.output),
		g.mul(g.output, g.xn, g.logits, 0, false),
		d.argmax(g.logits, cfg.VocabSize, g.best),
	)
}

// SetBatchRows tells the following Decode and DecodeArgmax calls how many
// rows the reference engine runs their position's pass with: n for a
// prompt of n tokens forwarded in one batch, 1 (the default) for decoding.
// Only ggml's flash attention (Options.FlashAttention) depends on it: from
// 64 rows on ggml runs its tiled kernel, which rounds differently.
func (g *Model) SetBatchRows(n int) { g.rows = max(n, 1) }

// Decode runs token at position pos (the cache must hold positions
// 0..pos-1 of the same sequence) and returns its logits.
func (g *Model) Decode(token, pos int) ([]float32, error) {
	unlock := g.dev.bind()
	defer unlock()
	if err := g.step(0, token, pos); err != nil {
		return nil, err
	}
	logits := make([]float32, g.Config.VocabSize)
	if err := g.dev.downloadF32(logits, g.logits); err != nil {
		return nil, fmt.Errorf("cuda: decode: %w", err)
	}
	return logits, nil
}

// DecodeArgmax runs token at position pos like Decode and returns the
// greedy next token, chosen on the device (only 4 bytes come back: the
// step's one host synchronisation).
func (g *Model) DecodeArgmax(token, pos int) (int, error) {
	unlock := g.dev.bind()
	defer unlock()
	if err := g.step(0, token, pos); err != nil {
		return 0, err
	}
	var best [4]byte
	if err := g.dev.download(best[:], g.best); err != nil {
		return 0, fmt.Errorf("cuda: decode: %w", err)
	}
	return int(int32(uint32(best[0]) | uint32(best[1])<<8 | uint32(best[2])<<16 | uint32(best[3])<<24)), nil
}

// Forward runs rows (tokens of any slots at any positions) and writes the
// logits of each row with Logits set, vocab floats each in row order, to
// logits. Each row attends to its slot's cached positions up to its own
// Pos: rows of one slot in one call must come in increasing positions and
// are causal among themselves. The number of rows is the pass size that
// picks ggml's flash-attention kernel (Options.FlashAttention), as the CPU
// engine does for its passes.
func (g *Model) Forward(rows []Row, logits []float32) error {
	vocab := g.Config.VocabSize
	want := 0
	for _, r := range rows {
		if r.Logits {
			want++
		}
	}
	if len(logits) < want*vocab {
		return fmt.Errorf("cuda: forward: %d logits rows need %d floats, got %d", want, want*vocab, len(logits))
	}
	unlock := g.dev.bind()
	defer unlock()
	saved := g.rows
	g.rows = max(len(rows), 1)
	defer func() { g.rows = saved }()
	o := 0
	for i, r := range rows {
		if err := g.step(r.Slot, r.Token, r.Pos); err != nil {
			return fmt.Errorf("cuda: forward row %d: %w", i, err)
		}
		if r.Logits {
			if err := g.dev.downloadF32(logits[o*vocab:(o+1)*vocab], g.logits); err != nil {
				return fmt.Errorf("cuda: forward row %d: %w", i, err)
			}
			o++
		}
	}
	return nil
}
