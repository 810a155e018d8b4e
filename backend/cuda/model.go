package cuda

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// Options configure a device-resident Model.
type Options struct {
	// Context is the KV cache's capacity in positions (< 1: 4096, capped
	// at the model's context length).
	Context int
	// Numerics are the CPU engine's: the device follows the same rounding
	// (for FlashAttention, ggml's one-row kernel, and the tiled one for
	// rows of a pass of 64 rows or more: Forward's rows, SetBatchRows).
	cpu.Numerics
	// NoGraph launches each step's kernels one by one instead of replaying
	// the step captured once as a CUDA graph.
	NoGraph bool
	// Slots is the number of sequences with their own device KV cache of
	// Context positions (< 1: 1).
	Slots int
	// FirstLayer > 0 keeps only decoder layers FirstLayer.. and the output
	// head on the device (llama.cpp's -ngl counts layers from the last):
	// the host computes the layers before and passes their hidden states
	// to ForwardHidden.
	FirstLayer int
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
	// qkv is q, k and v stacked when they share a type (one launch);
	// otherwise q (q and k stacked when those two share a type, k nil), k
	// and v are set.
	qkv, q, k, v, o *matrix
	qkvBias         devptr // q, k and v biases stacked; 0 without (LLaMA)
	// gateUp is gate and up stacked when they share a type.
	gateUp, gate, up, down *matrix
	kc, vc                 devptr // this layer's KV caches, slot after slot
}

// Model is a Qwen2/LLaMA model whose weights, KV caches (Slots sequences)
// and activations live on the GPU. Forward runs passes of rows of any
// slots; Decode and DecodeArgmax run one token of slot 0 by replaying a
// captured CUDA graph. A Model is not safe for concurrent use.
type Model struct {
	Config *model.Config
	dev    *Device
	opts   Options
	ctx    int
	slots  int
	first  int // the first decoder layer on the device
	// slotBytes is the size of one slot's keys (or values) in one layer.
	slotBytes int
	// chunk is the most rows one pass runs on the device (longer Forward
	// calls run in chunks); logitRows the most rows the LM head takes at
	// once; scoreRows the rows whose heads x ctx floats the attention
	// scratch (scores) holds (chunkRows).
	chunk, logitRows, scoreRows int

	embed, output *matrix
	norm          devptr
	layers        []layer
	invFreq       devptr
	thetaScale    float32

	// activations, chunk rows each
	x, xn, qkv, attn, gu, act, logits, scores devptr
	q80, q8k                                  devptr
	best, argScratch                          devptr

	// state is what the kernels read of a pass: the pass's rows for ggml's
	// attention choice (int32), 3 int32 of padding, 4 int32 per row
	// (token, position, slot, 0), then the indices of the rows whose
	// logits are wanted. The decode graph reads it too.
	state     devptr
	stateHost []int32
	// exec is the captured decode step, for rows of at most splitMin keys
	// ([0]) and of more ([1], with the split attention).
	exec [2]uintptr
	// long says that a row of the pass in the state has more keys than
	// the split's threshold (splitMin): its decode attention is the split
	// one (attnSplit). The graphs of the two differ (passKey, exec), so a
	// short context's steps pay no split launch.
	long   bool
	rows   int        // SetBatchRows
	graphs passGraphs // captured passes of several rows (graphs.go)
	host   []float32  // HostFloats' page-locked memory
	picker *selector  // ForwardPick's (topk.go)
	ring   stepRing   // the decode steps' answers and events (ahead.go)
	ahead  ahead      // a decode step sent before its token was read
	// greedyKey is ForwardPick's result for one greedy row (pickGreedy).
	greedyKey [1]uint64

	allocs []devptr
}

// Load uploads m's weights to the GPU (once; they stay resident) and
// allocates a KV cache of opts.Context positions for each of opts.Slots
// sequences.
func Load(m *model.Model, opts Options) (*Model, error) {
	d, err := Open()
	if err != nil {
		return nil, err
	}
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkShared(d.name, d.sharedOptin, cfg.HeadDim); err != nil {
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
	if opts.FirstLayer < 0 || opts.FirstLayer >= cfg.NumLayers {
		return nil, fmt.Errorf("cuda: first layer %d outside 0..%d", opts.FirstLayer, cfg.NumLayers-1)
	}
	chunk, scoreRows := chunkRows(cfg.NumHeads, cfg.HeadDim, ctx)
	g := &Model{Config: cfg, dev: d, opts: opts, ctx: ctx, slots: slots, first: opts.FirstLayer, rows: 1, chunk: chunk,
		scoreRows: scoreRows, logitRows: min(chunk, 32)}
	g.stateHost = make([]int32, 4+5*chunk)
	if err := g.load(m); err != nil {
		g.freeAll()
		return nil, fmt.Errorf("cuda: load %s: %w", m.Path, err)
	}
	return g, nil
}

// chunkRows is the most rows of a pass (chunk) and the rows of the
// attention scratch (scoreRows: heads x ctx floats a row, at most 256 MiB
// in all) for a model of heads query heads of dimension dim and a context
// of ctx positions. The kernels that keep a row's scores there (the
// one-block attention of few-row passes, and of every pass where no
// row-tiled kernel has the head dimension) need a pass's every row in it,
// so the chunk is the scratch's rows; where the head dimension has the
// row-tiled and tensor-core kernels (64, 128) and the scratch holds 64
// rows, passes of 64 rows and more keep only key-range partials there
// (attnArgs.fits) and a pass takes 512 rows whatever the context: a
// 16,384-token prompt of the 1.5B model then runs 32 passes of 512 rows
// instead of 49 of 338 (H100, pp16384 1.5B Q4_K_M: see attention.go's
// attnArgs.scoreRows).
func chunkRows(heads, dim, ctx int) (chunk, scoreRows int) {
	scoreRows = min(512, max(1, (256<<20)/(4*heads*ctx)))
	if _, ok := faRowsKernels[dim]; ok && scoreRows >= 64 && !smallChunks {
		return 512, scoreRows
	}
	return scoreRows, scoreRows
}

// smallChunks keeps a pass's rows to the attention scratch's (chunkRows),
// as before the row-tiled kernels let passes outgrow it: a variable for
// the benchmarks' comparisons (APR_CUDA_TUNE=smallchunks).
var smallChunks = false

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

// stacked uploads the named matrices (rows[i] x cols each) as one when
// they share a type, returning nil (and nothing uploaded) otherwise.
func (l *loader) stacked(names []string, rows []int, cols int) *matrix {
	ts := make([]*tensor.Tensor, len(names))
	for i, n := range names {
		if ts[i] = l.tensor(n, rows[i], cols); ts[i] == nil {
			return nil
		}
	}
	w, err := l.g.dev.uploadStacked(names[0]+"+", ts...)
	if err != nil {
		l.err = err
		return nil
	}
	if w != nil {
		l.g.allocs = append(l.g.allocs, w.ptr)
	}
	return w
}

// floats returns a float vector tensor's values.
func (l *loader) floats(name string, n int) []float32 {
	t := l.tensor(name, n)
	if t == nil {
		return nil
	}
	v, err := cpu.Vector(t)
	if err != nil {
		l.err = err
	}
	return v
}

// upload copies floats to the device.
func (l *loader) upload(what string, v []float32) devptr {
	if l.err != nil {
		return 0
	}
	p, err := l.g.track(l.g.dev.uploadF32(v))
	if err != nil {
		l.err = fmt.Errorf("tensor %s: %w", what, err)
	}
	return p
}

func (l *loader) vector(name string, n int) devptr {
	return l.upload(name, l.floats(name, n))
}

func (g *Model) loadLayer(l *loader, i int) layer {
	cfg := g.Config
	h, qDim, kvDim, ffn := cfg.Dims()
	ly := layer{
		attnNorm: l.vector(model.Layer(i, model.AttnNorm), h),
		mlpNorm:  l.vector(model.Layer(i, model.FFNNorm), h),
		o:        l.matrix(model.Layer(i, model.AttnO), h, qDim),
		down:     l.matrix(model.Layer(i, model.FFNDown), h, ffn),
	}
	qkv := []string{model.Layer(i, model.AttnQ), model.Layer(i, model.AttnK), model.Layer(i, model.AttnV)}
	if ly.qkv = l.stacked(qkv, []int{qDim, kvDim, kvDim}, h); ly.qkv == nil {
		// Q4_K_M's attn_v is often Q6_K: q and k still go as one.
		if ly.q = l.stacked(qkv[:2], []int{qDim, kvDim}, h); ly.q == nil {
			ly.q = l.matrix(qkv[0], qDim, h)
			ly.k = l.matrix(qkv[1], kvDim, h)
		}
		ly.v = l.matrix(qkv[2], kvDim, h)
	}
	gu := []string{model.Layer(i, model.FFNGate), model.Layer(i, model.FFNUp)}
	if ly.gateUp = l.stacked(gu, []int{ffn, ffn}, h); ly.gateUp == nil {
		ly.gate = l.matrix(gu[0], ffn, h)
		ly.up = l.matrix(gu[1], ffn, h)
	}
	if cfg.AttentionBias {
		b := l.floats(model.Layer(i, model.AttnQB), qDim)
		b = append(b, l.floats(model.Layer(i, model.AttnKB), kvDim)...)
		b = append(b, l.floats(model.Layer(i, model.AttnVB), kvDim)...)
		ly.qkvBias = l.upload(model.Layer(i, model.AttnQB)+"+", b)
	}
	return ly
}

func (g *Model) load(m *model.Model) error {
	cfg := g.Config
	h, qDim, kvDim, ffn := cfg.Dims()
	l := &loader{g: g, m: m}
	_, untied := m.Tensors[model.Output]
	if g.first == 0 || !untied {
		g.embed = l.matrix(model.TokenEmbd, cfg.VocabSize, h)
	}
	g.norm = l.vector(model.OutputNorm, h)
	if untied {
		g.output = l.matrix(model.Output, cfg.VocabSize, h)
	} else {
		g.output = g.embed
	}
	if l.err != nil {
		return l.err
	}
	elem := kvElem(g.opts.KVCacheF16)
	g.slotBytes = g.ctx * kvDim * elem
	for i := g.first; i < cfg.NumLayers; i++ {
		ly := g.loadLayer(l, i)
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
	// Rotary frequencies as the CPU backend computes them.
	dim := cfg.HeadDim
	inv := make([]float32, dim/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(cfg.RopeTheta, float64(float32(2*i)/float32(dim))))
	}
	g.thetaScale = float32(math.Pow(cfg.RopeTheta, -2/float64(dim)))
	widest := max(h, qDim, ffn)
	q80, err := tensor.Q8_0.RowBytes(widest / 32 * 32)
	if err != nil {
		return err
	}
	q8k, err := tensor.Q8_K.RowBytes(widest / 256 * 256)
	if err != nil {
		return err
	}
	c := g.chunk
	bufs := []struct {
		p *devptr
		n int
	}{
		{&g.x, 4 * c * h}, {&g.xn, 4 * c * h}, {&g.qkv, 4 * c * (qDim + 2*kvDim)}, {&g.attn, 4 * c * qDim},
		{&g.gu, 4 * c * 2 * ffn}, {&g.act, 4 * c * ffn}, {&g.logits, 4 * g.logitRows * cfg.VocabSize},
		{&g.scores, 4 * g.scoreRows * cfg.NumHeads * g.ctx}, {&g.q80, c * q80}, {&g.q8k, c * q8k}, {&g.best, 4},
		{&g.argScratch, 8 * argmaxParts}, {&g.state, 4 * len(g.stateHost)},
	}
	for _, b := range bufs {
		if *b.p, err = g.track(g.dev.alloc(max(b.n, 4))); err != nil {
			return err
		}
	}
	if g.invFreq, err = g.track(g.dev.uploadF32(inv)); err != nil {
		return err
	}
	if err := g.newRing(); err != nil {
		return err
	}
	if err := g.prepareBLAS(); err != nil {
		return err
	}
	if slices.ContainsFunc(g.matrices(), func(w *matrix) bool { return w != nil && splitType(w.dt) }) {
		if err := g.dev.initTerms(); err != nil {
			return err
		}
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
	// A step sent ahead may still run: let it finish before its memory goes
	// (an error here leaves nothing else to do than free).
	_ = g.dev.sync()
	g.ahead = ahead{}
	g.dropExec()
	g.freeGraphs()
	g.freeHost()
	g.freeRing()
	for _, p := range g.allocs {
		g.dev.free(p)
	}
	g.allocs = nil
}

// dropExec destroys the captured decode steps (the next step captures
// again).
func (g *Model) dropExec() {
	for i, e := range g.exec {
		if e != 0 {
			g.dev.drv.cuGraphExecDestroy(e)
			g.exec[i] = 0
		}
	}
}

// qkvBlocks is qkvCap's bound on the q/k/v launch of a decode step whose
// attention is at (0: none): where attentionRope runs a kernel of whole
// multiprocessors after it, the multiprocessors less its blocks (-1; none
// where that leaves under a quarter of them), or qkvCap.
func (g *Model) qkvBlocks(at attnArgs) int {
	name, blocks, _, _, _ := g.dev.ropeAttnLaunch(at, 1)
	switch {
	case name == "" || qkvCap == 0:
		return 0
	case qkvCap > 0:
		return qkvCap
	}
	if n := g.dev.sms - blocks; n >= g.dev.sms/4 {
		return n
	}
	return 0
}

// quants returns the activation buffers that the matrices ws read (0 for
// an encoding none of them reads).
func (g *Model) quants(ws ...*matrix) (q80, q8k devptr) {
	for _, w := range ws {
		if w == nil {
			continue
		}
		switch actType(w.dt) {
		case tensor.Q8_0:
			q80 = g.q80
		case tensor.Q8_K:
			q8k = g.q8k
		}
	}
	return q80, q8k
}

// normFor writes the RMS-normalised m rows of g.x (weights nw) to g.xn
// for the products ws that read them next: quantized into the activation
// buffers their types need, or split for their cuBLAS GEMMs when they all
// are such products of one float type. The rmsnorm kernel also asks for
// the cache rows kv in L2 (none for the zero kvRows).
func (g *Model) normFor(nw devptr, m int, kv kvRows, ws ...*matrix) error {
	d, h := g.dev, g.Config.HiddenSize
	eps, ggml := float32(g.Config.RMSNormEps), g.opts.GGMLOps
	if dt, ok := oneFloatType(ws...); ok { // float weights: no quantized activation
		if ran, err := d.rmsNormSplit(g.x, nw, g.xn, h, m, eps, ggml, 0, dt); ran {
			return err
		}
	}
	q80, q8k := g.quants(ws...)
	out := g.xn
	if allQuantized(ws...) {
		out = 0 // every product reads q80 or q8k (Model.mul): no float rows to write
	}
	return d.rmsNormPre(g.x, nw, out, h, m, eps, ggml, 0, q80, q8k, kv)
}

// allQuantized reports whether the products of every non-nil w (one at
// least) read a quantized activation, as Model.mul decides by actType.
func allQuantized(ws ...*matrix) bool {
	n := 0
	for _, w := range ws {
		if w == nil {
			continue
		}
		if actType(w.dt) == tensor.F32 {
			return false
		}
		n++
	}
	return n > 0
}

// oneFloatType returns the type of the matrices of ws that are not nil
// when it is one 16-bit float type (cuBLAS's) for all of them.
func oneFloatType(ws ...*matrix) (tensor.DType, bool) {
	var dt tensor.DType
	n := 0
	for _, w := range ws {
		if w == nil {
			continue
		}
		if blasType(w.dt) < 0 || n > 0 && w.dt != dt {
			return 0, false
		}
		dt, n = w.dt, n+1
	}
	return dt, n > 0
}

// mul runs y[r] (+)= w·x[r] (+ bias) for m rows of x (n floats each, in the
// activation buffers that quants named when x was written); y rows are
// yStride floats apart.
func (g *Model) mul(w *matrix, x devptr, n int, y devptr, yStride int, bias devptr, acc bool, m int) error {
	act, stride := x, 4*n
	switch vt := actType(w.dt); vt {
	case tensor.Q8_0, tensor.Q8_K:
		act = g.q80
		if vt == tensor.Q8_K {
			act = g.q8k
		}
		var err error
		if stride, err = vt.RowBytes(n); err != nil {
			return err
		}
	}
	return g.dev.matmul(w, act, stride, y, yStride, bias, acc, m)
}

// offset returns p advanced by i floats, or 0 for p == 0.
func offset(p devptr, i int) devptr {
	if p == 0 {
		return 0
	}
	return p + devptr(4*i)
}

// The state buffer's parts.
func (g *Model) passp() devptr    { return g.state }
func (g *Model) info() devptr     { return g.state + 16 }
func (g *Model) sel(m int) devptr { return g.state + 16 + devptr(16*m) }
func (g *Model) style() int {
	if g.opts.Rope == cpu.RopeGGML {
		return 1
	}
	return 0
}

// enqueue issues the decoder layers for the m rows of the state buffer
// (of a pass of pass rows; 0: the kernels read it from the state), leaving
// their hidden states in g.x.
func (g *Model) enqueue(m, pass int, hidden []float32) error {
	cfg := g.Config
	h, qDim, kvDim, ffn := cfg.Dims()
	d := g.dev
	eps := float32(cfg.RMSNormEps)
	f16 := g.opts.KVCacheF16
	ggml := g.opts.GGMLOps
	info := g.info()
	qkvDim := qDim + 2*kvDim
	at := attnArgs{heads: cfg.NumHeads, kvHeads: cfg.NumKVHeads, dim: cfg.HeadDim, ctx: g.ctx,
		scale: float32(1 / math.Sqrt(float64(cfg.HeadDim))), f16: f16, fa: g.opts.FlashAttention && f16,
		qStride: qkvDim, slotBytes: g.slotBytes, pass: pass, long: g.long, scoreRows: g.scoreRows}
	if hidden != nil {
		// The host's hidden states entering the first layer on the device.
		r := d.drv.cuMemcpyHtoDAsync(g.x, unsafe.Pointer(&hidden[0]), uintptr(4*m*h), d.stream)
		if err := d.drv.check("cuMemcpyHtoDAsync (hidden states)", r); err != nil {
			return err
		}
	} else if err := d.getRows(g.embed, g.x, info, m); err != nil {
		return err
	}
	// One row (decode) runs the fused products where the types allow:
	// each block of a product makes its normalised and quantized
	// activation itself (fused.go), one launch for q, k and v.
	fuse := 0
	if m == 1 {
		fuse = fuseDecode
	}
	// The q/k/v launches' blocks, bounded by qkvCap (the same every layer).
	qkvMax := 0
	if m == 1 {
		qkvMax = g.qkvBlocks(at)
	}
	for li := range g.layers {
		l := &g.layers[li]
		err := d.capped(qkvMax, func() error { return g.qkvProducts(l, m, info) })
		// The o product's activation, which the attention may encode itself
		// (none where the fused product quantizes g.attn itself).
		oFused := fuse&fuseO != 0 && fusable(l.o)
		var q80o, q8ko devptr
		if !oFused {
			q80o, q8ko = g.quants(l.o)
		}
		ran, quantized, e := d.attentionRope(g.qkv, l.kc, l.vc, g.attn, g.scores, info, g.passp(), g.invFreq,
			g.thetaScale, g.style(), at, m, q80o, q8ko)
		if ran {
			err = errors.Join(err, e)
		} else {
			err = errors.Join(err,
				d.ropeStore(g.qkv, qkvDim, g.invFreq, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, info, g.thetaScale, g.style(),
					l.kc, l.vc, f16, g.slotBytes, m),
				d.attention(g.qkv, l.kc, l.vc, g.attn, g.scores, info, g.passp(), at, m))
		}
		if oFused {
			err = errors.Join(err, d.capped(d.fuseBlocks(), func() error {
				return d.matvecFused([]mvxOut{{w: l.o, y: g.x, acc: true}}, mvxQuant, g.attn, qDim, 0, 0, false)
			}))
		} else {
			if !quantized {
				err = errors.Join(err, d.quantize(g.attn, qDim*m, q80o, q8ko))
			}
			err = errors.Join(err, g.mul(l.o, g.attn, qDim, g.x, h, 0, true, m))
		}
		if fuse&fuseFFN != 0 && fusable(l.gateUp, l.gate, l.up) {
			err = errors.Join(err, d.capped(d.fuseBlocks(), func() error {
				return d.matvecFused(g.gateUpOuts(l), mvxNorm, g.x, h, l.mlpNorm, eps, ggml)
			}))
		} else {
			err = errors.Join(err, g.normFor(l.mlpNorm, m, kvRows{}, l.gateUp, l.gate, l.up))
			if l.gateUp != nil {
				err = errors.Join(err, g.mul(l.gateUp, g.xn, h, g.gu, 2*ffn, 0, false, m))
			} else {
				err = errors.Join(err,
					g.mul(l.gate, g.xn, h, g.gu, 2*ffn, 0, false, m),
					g.mul(l.up, g.xn, h, offset(g.gu, ffn), 2*ffn, 0, false, m))
			}
		}
		if fuse&fuseDown != 0 && fusable(l.down) {
			err = errors.Join(err, d.capped(d.fuseBlocks(), func() error {
				return d.matvecFused([]mvxOut{{w: l.down, y: g.x, acc: true}}, mvxSilu, g.gu, ffn, 0, 0, ggml)
			}))
		} else {
			q80, q8k := g.quants(l.down)
			err = errors.Join(err,
				d.siluQuant(g.gu, g.act, ffn, m, ggml, q80, q8k),
				g.mul(l.down, g.act, ffn, g.x, h, 0, true, m))
		}
		if err != nil {
			return fmt.Errorf("cuda: layer %d: %w", g.first+li, err)
		}
	}
	return nil
}

// qkvProducts issues layer l's q/k/v products of a pass of m rows into
// g.qkv: fused with the attention's RMSNorm where fuseQKVNorm says so, else
// after it (the norm also asks for the layer's cache rows in one-row passes:
// kvPrefetch).
func (g *Model) qkvProducts(l *layer, m int, info devptr) error {
	h, qDim, kvDim, _ := g.Config.Dims()
	qkvDim := qDim + 2*kvDim
	eps, ggml, d := float32(g.Config.RMSNormEps), g.opts.GGMLOps, g.dev
	if fuseQKVNorm(l, m) {
		return d.matvecFused(g.qkvOuts(l), mvxNorm, g.x, h, l.attnNorm, eps, ggml)
	}
	var kv kvRows
	if m == 1 && kvPrefetch {
		kv = kvRows{kc: l.kc, vc: l.vc, info: info, slotBytes: g.slotBytes, rowBytes: g.slotBytes / g.ctx}
	}
	err := g.normFor(l.attnNorm, m, kv, l.qkv, l.q, l.k, l.v)
	switch {
	case l.qkv == nil && m == 1 && qkvOneLaunch && fusable(l.q, l.k, l.v):
		// q (+k) and v of different types, one launch on the activation
		// that normFor quantized.
		q80, q8k := g.quants(l.q, l.k, l.v)
		return errors.Join(err, d.matvecFused(g.qkvOuts(l), mvxGlobal, max(q80, q8k), h, 0, 0, false))
	case l.qkv != nil:
		return errors.Join(err, g.mul(l.qkv, g.xn, h, g.qkv, qkvDim, l.qkvBias, false, m))
	}
	err = errors.Join(err, g.mul(l.q, g.xn, h, g.qkv, qkvDim, l.qkvBias, false, m))
	if l.k != nil {
		err = errors.Join(err, g.mul(l.k, g.xn, h, offset(g.qkv, qDim), qkvDim, offset(l.qkvBias, qDim), false, m))
	}
	return errors.Join(err, g.mul(l.v, g.xn, h, offset(g.qkv, qDim+kvDim), qkvDim, offset(l.qkvBias, qDim+kvDim), false, m))
}

// head issues the final norm and the LM head for n rows of the pass: those
// that the state's selection lists from index from on; their logits go to
// g.logits (n x vocab).
func (g *Model) head(from, n, m int) error {
	cfg := g.Config
	h := cfg.HiddenSize
	if m == 1 && n == 1 && fuseDecode&fuseHead != 0 && fusable(g.output) {
		// One row: row 0 of g.x.
		return g.dev.matvecFused([]mvxOut{{w: g.output, y: g.logits}}, mvxNorm, g.x, h, g.norm, float32(cfg.RMSNormEps), g.opts.GGMLOps)
	}
	q80, q8k := g.quants(g.output)
	return errors.Join(
		g.dev.rmsNorm(g.x, g.norm, g.xn, h, n, float32(cfg.RMSNormEps), g.opts.GGMLOps, offset(g.sel(m), from), q80, q8k),
		g.mul(g.output, g.xn, h, g.logits, cfg.VocabSize, 0, false, n))
}

// decodeStep issues one row's pass (the state's row 0), its logits and
// their argmax in g.best, which also readies the step after it in the
// state and writes the answer to the ring (ahead.go).
func (g *Model) decodeStep() error {
	return errors.Join(g.enqueue(1, 0, nil), g.head(0, 1, 1),
		g.dev.argmax(g.logits, g.Config.VocabSize, g.argScratch, g.best, g.state, g.ring.dev))
}

// capture records decodeStep as a CUDA graph and instantiates it.
func (g *Model) capture() error {
	d := g.dev
	const captureThreadLocal = 1
	if err := d.drv.check("cuStreamBeginCapture", d.drv.cuStreamBeginCapture(d.stream, captureThreadLocal)); err != nil {
		return err
	}
	errEnq := g.decodeStep()
	var graph uintptr
	errEnd := d.drv.check("cuStreamEndCapture", d.drv.cuStreamEndCapture(d.stream, &graph))
	if err := errors.Join(errEnq, errEnd); err != nil {
		if graph != 0 {
			d.drv.cuGraphDestroy(graph)
		}
		return fmt.Errorf("cuda: capture the decode step: %w", err)
	}
	defer d.drv.cuGraphDestroy(graph)
	return d.drv.check("cuGraphInstantiate", d.drv.cuGraphInstantiate(&g.exec[boolInt(g.long)], graph, 0))
}

// check validates a row.
func (g *Model) check(r Row) error {
	switch {
	case r.Token < 0 || r.Token >= g.Config.VocabSize:
		return fmt.Errorf("token id %d outside the vocabulary (%d)", r.Token, g.Config.VocabSize)
	case r.Pos < 0 || r.Pos >= g.ctx:
		return fmt.Errorf("position %d outside the context of %d", r.Pos, g.ctx)
	case r.Slot < 0 || r.Slot >= g.slots:
		return fmt.Errorf("slot %d outside 0..%d", r.Slot, g.slots-1)
	}
	return nil
}

// setState uploads a pass of pass rows' part rows and their selection of
// logits rows; it returns the number selected. A step sent ahead
// (ahead.go) is forgotten: its work stays ahead of the pass on the stream.
func (g *Model) setState(pass int, rows []Row) (int, error) {
	g.ahead = ahead{}
	s := g.stateHost
	s[0], s[1], s[2], s[3] = int32(pass), int32(g.ring.seq), 0, 0
	m := len(rows)
	sel := s[4+4*m:]
	n, last := 0, 0
	for i, r := range rows {
		last = max(last, r.Pos)
		s[4+4*i], s[5+4*i], s[6+4*i], s[7+4*i] = int32(r.Token), int32(r.Pos), int32(r.Slot), 0
		if r.Logits {
			sel[n] = int32(i)
			n++
		}
	}
	if m == 1 && n == 0 {
		sel[0] = 0 // the decode graph's head reads one row
	}
	g.long = g.longAt(last)
	d := g.dev
	r := d.drv.cuMemcpyHtoDAsync(g.state, unsafe.Pointer(&s[0]), uintptr(4*(4+4*m+max(n, 1))), d.stream)
	return n, d.drv.check("cuMemcpyHtoDAsync (pass state)", r)
}

// step runs one row (a whole pass of pass rows for ggml's attention choice)
// with its logits and their argmax: by replaying the captured graph
// (capturing it on the first call), or kernel by kernel with NoGraph. It
// returns the step's count (sendStep).
func (g *Model) step(r Row, pass int) (uint32, error) {
	if g.first > 0 {
		return 0, fmt.Errorf("cuda: the device holds layers %d.. only: run ForwardHidden", g.first)
	}
	if err := g.check(r); err != nil {
		return 0, fmt.Errorf("cuda: decode: %w", err)
	}
	if _, err := g.setState(pass, []Row{r}); err != nil {
		return 0, err
	}
	return g.sendStep(g.long)
}

// longAt says whether a row at position pos has more keys than the
// split's threshold (Model.long).
func (g *Model) longAt(pos int) bool {
	lim := splitMin(g.opts.FlashAttention && g.opts.KVCacheF16)
	return lim >= 0 && pos+1 > lim
}

// SetBatchRows tells the following Decode and DecodeArgmax calls how many
// rows the reference engine runs their position's pass with: n for a
// prompt of n tokens forwarded in one batch, 1 (the default) for decoding.
// Only ggml's flash attention (Options.FlashAttention) depends on it: from
// 64 rows on ggml runs its tiled kernel, which rounds differently.
func (g *Model) SetBatchRows(n int) { g.rows = max(n, 1) }

// Decode runs token at position pos of slot 0 (its cache must hold
// positions 0..pos-1 of the same sequence) and returns its logits.
func (g *Model) Decode(token, pos int) ([]float32, error) {
	unlock := g.dev.bind()
	defer unlock()
	if _, err := g.step(Row{Token: token, Pos: pos}, g.rows); err != nil {
		return nil, err
	}
	logits := make([]float32, g.Config.VocabSize)
	if err := g.dev.downloadF32(logits, g.logits); err != nil {
		return nil, fmt.Errorf("cuda: decode: %w", err)
	}
	return logits, nil
}

// DecodeArgmax runs token at position pos like Decode and returns the
// greedy next token (sample.Argmax's), chosen on the device: only that
// token comes back. The step after it (that token at pos+1) is sent
// before the token is read (ahead.go), so a call for it finds it under
// way and the device does not wait for the host between steps.
func (g *Model) DecodeArgmax(token, pos int) (int, error) {
	unlock := g.dev.bind()
	defer unlock()
	tok, _, err := g.greedy(Row{Token: token, Pos: pos}, g.rows, false)
	return tok, err
}

// Forward runs rows (tokens of any slots at any positions) as one pass and
// writes the logits of each row with Logits set, vocab floats each in row
// order, to logits. Each row attends to its slot's cached positions up to
// its own Pos, including those of earlier rows of the call: rows of one
// slot must come in increasing positions. The number of rows is the pass
// size that picks ggml's flash-attention kernel (Options.FlashAttention),
// as the CPU engine does for its passes. A pass longer than the device's
// chunk runs in chunks, one after the other; one row replays the decode
// graph.
func (g *Model) Forward(rows []Row, logits []float32) error {
	if g.first > 0 {
		return fmt.Errorf("cuda: forward: the device holds layers %d.. only: run ForwardHidden", g.first)
	}
	return g.forward(rows, nil, logits)
}

// ForwardHidden is Forward for a model loaded with Options.FirstLayer:
// hidden holds each row's hidden state entering that layer (HiddenSize
// floats a row, in row order), as the host computed it.
func (g *Model) ForwardHidden(rows []Row, hidden, logits []float32) error {
	h := g.Config.HiddenSize
	if len(hidden) < len(rows)*h {
		return fmt.Errorf("cuda: forward: %d rows need %d hidden floats, got %d", len(rows), len(rows)*h, len(hidden))
	}
	return g.forward(rows, hidden, logits)
}

// forward runs a pass, from the embedding or (hidden not nil) from the
// host's hidden states.
func (g *Model) forward(rows []Row, hidden, logits []float32) error {
	vocab, h := g.Config.VocabSize, g.Config.HiddenSize
	want := 0
	for i, r := range rows {
		if err := g.check(r); err != nil {
			return fmt.Errorf("cuda: forward row %d: %w", i, err)
		}
		if r.Logits {
			want++
		}
	}
	if len(logits) < want*vocab {
		return fmt.Errorf("cuda: forward: %d logits rows need %d floats, got %d", want, want*vocab, len(logits))
	}
	unlock := g.dev.bind()
	defer unlock()
	pass := len(rows)
	if pass == 1 && hidden == nil {
		if _, err := g.step(rows[0], 1); err != nil {
			return err
		}
		if rows[0].Logits {
			return g.fetch(logits, 0, 1)
		}
		return nil
	}
	// Programmatic dependent launch (launch.go) is for one-row steps: in a
	// pass of several rows the early-launched blocks of the product,
	// norm and pointwise kernels wait on SMs that the attention and mmq
	// kernels before them need (H200, 1.5B Q4_K_M, 32 rows with
	// page-locked logits: 12.3 ms a pass with it, 10.0 without).
	defer func(on bool) { pdlEnabled = on }(pdlEnabled)
	pdlEnabled = false
	if pass <= g.chunk && hidden == nil && want <= g.logitRows {
		// One chunk, one LM head: a pass that runPass may replay.
		n, err := g.setState(pass, rows)
		if err != nil {
			return err
		}
		if err := g.runPass(pass, n); err != nil {
			return fmt.Errorf("cuda: forward: %w", err)
		}
		if err := g.fetch(logits, 0, n); err != nil {
			return fmt.Errorf("cuda: forward: %w", err)
		}
		return g.dev.sync()
	}
	o := 0
	for start := 0; start < pass; start += g.chunk {
		part := rows[start:min(pass, start+g.chunk)]
		m := len(part)
		n, err := g.setState(pass, part)
		if err != nil {
			return err
		}
		var hs []float32
		if hidden != nil {
			hs = hidden[start*h : (start+m)*h]
		}
		if err := g.enqueue(m, pass, hs); err != nil {
			return fmt.Errorf("cuda: forward: %w", err)
		}
		for from := 0; from < n; from += g.logitRows {
			k := min(g.logitRows, n-from)
			if err := g.head(from, k, m); err != nil {
				return fmt.Errorf("cuda: forward: %w", err)
			}
			if err := g.fetch(logits, o, k); err != nil {
				return fmt.Errorf("cuda: forward: %w", err)
			}
			o += k
		}
	}
	return g.dev.sync()
}
