package cpu

import (
	"math"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// Backend runs the forward pass's operations on the CPU. Its methods run
// one operation at a time (the engine serialises its forward passes); each
// is split over the worker pool and allocates nothing once its scratch
// buffers have grown to the largest batch seen.
type Backend struct {
	pool    *Pool
	scratch [][]float32 // per-worker row buffers

	// The operation in flight and its pool functions, bound once in New.
	mm                                  matMulOp
	mmQuantize, mmQuantizeTiles, mmRows func(lo, hi, worker int)
	at                                  attentionOp
	atRun                               func(lo, hi, worker int)
	silu                                siluOp
	siluRun                             func(lo, hi, worker int)
	fa                                  faOp
	faRun, faTiledRun                   func(lo, hi, worker int)
}

// New returns a CPU backend using threads workers (< 1: all CPUs).
func New(threads int) *Backend {
	p := NewPool(threads)
	b := &Backend{pool: p, scratch: make([][]float32, p.Threads())}
	b.mmQuantize, b.mmQuantizeTiles, b.mmRows = b.mm.quantize, b.mm.quantizeTiles, b.mm.rows
	b.atRun = b.attentionJobs
	b.siluRun = b.siluRange
	b.faRun, b.faTiledRun = b.faJobs, b.faTiledJobs
	return b
}

// Threads is the number of workers.
func (b *Backend) Threads() int { return b.pool.Threads() }

// Close stops the worker pool.
func (b *Backend) Close() { b.pool.Close() }

func (b *Backend) rowBuf(worker, n int) []float32 {
	if cap(b.scratch[worker]) < n {
		// Grow by half again at least: attention's buffer grows with the
		// context, one position per decode step.
		b.scratch[worker] = make([]float32, max(n, cap(b.scratch[worker])*3/2, 1024))
	}
	return b.scratch[worker][:n]
}

// MatMul computes dst[t][r] = sum_c x[t][c] * w[r][c] for n input rows x
// (n x w.Cols) into dst (n x w.Rows): y = x · Wᵀ, as torch's Linear does.
// Output rows of W are split over the workers in blocks of rows that stay
// in cache while all n inputs pass over them, so each weight row is read
// from memory once.
func (b *Backend) MatMul(dst []float32, w *Matrix, x []float32, n int) {
	in, out := w.Cols, w.Rows
	_ = x[n*in-1]
	_ = dst[n*out-1]
	b.matMul(dst, w, x, n)
}

// RMSNorm writes x / rms(x) * weight for each of the n rows of x (row length
// len(weight)) into dst, computing as transformers does in float32.
func (b *Backend) RMSNorm(dst, x, weight []float32, n int, eps float32) {
	d := len(weight)
	for t := 0; t < n; t++ {
		row := x[t*d : (t+1)*d]
		ss := quant.DotF32(row, row)
		scale := float32(1 / math.Sqrt(float64(ss/float32(d)+eps)))
		o := dst[t*d : (t+1)*d]
		for i, v := range row {
			o[i] = weight[i] * (v * scale)
		}
	}
}

// AddBias adds bias to each of the n rows of x.
func AddBias(x, bias []float32, n int) {
	d := len(bias)
	for t := 0; t < n; t++ {
		row := x[t*d : (t+1)*d]
		for i, v := range bias {
			row[i] += v
		}
	}
}

// Add sets x += y elementwise.
func Add(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
	}
}

// SiLUMul sets gate[i] = silu(gate[i]) * up[i], with ggml's vectorised
// expf where the CPU has AVX2 (within 2 ulp of expf).
func SiLUMul(gate, up []float32) {
	up = up[:len(gate)]
	m := siluMulFast(gate, up)
	siluMulGeneric(gate[m:], up[m:])
}

// siluMulGeneric is SiLUMul through math.Exp.
func siluMulGeneric(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// SiLUMul is the package's SiLUMul over rows of gate and up (n rows of
// width d each), split over the workers.
func (b *Backend) SiLUMul(gate, up []float32, n int) { b.siluMul(gate, up, n, false) }

// SiLUMulGGML is SiLUMul with ggml's exact numerics (SiLUMulGGML's
// exponential on every value), split over the workers.
func (b *Backend) SiLUMulGGML(gate, up []float32, n int) { b.siluMul(gate, up, n, true) }

func (b *Backend) siluMul(gate, up []float32, n int, ggml bool) {
	d := len(gate) / max(n, 1)
	b.silu = siluOp{gate: gate[:n*d], up: up[:n*d], ggml: ggml}
	// Blocks of 256 values: enough work per chunk to pay for the split.
	b.pool.Run(n*d, 256, b.siluRun)
	b.silu = siluOp{}
}

// siluOp is the SiLUMul in flight.
type siluOp struct {
	gate, up []float32
	ggml     bool
}

func (b *Backend) siluRange(lo, hi, _ int) {
	if b.silu.ggml {
		SiLUMulGGML(b.silu.gate[lo:hi], b.silu.up[lo:hi])
		return
	}
	SiLUMul(b.silu.gate[lo:hi], b.silu.up[lo:hi])
}

// Softmax normalises x in place (max-subtracted, float32 like torch).
func Softmax(x []float32) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	for i, v := range x {
		x[i] = v - m
	}
	faExp(x) // float32(math.Exp(float64(v - m))), vectorised
	var sum float32
	for _, e := range x {
		sum += e
	}
	inv := 1 / sum
	for i := range x {
		x[i] *= inv
	}
}

// RopeStyle says how rotary angles are computed. Both rotate pairs
// (i, i+dim/2) (the rotate-half / NEOX layout); they differ in the last bits
// of the angle, which is enough to flip near ties, so apr follows each
// format's reference implementation.
type RopeStyle int

const (
	// RopeHF computes inv_freq[i] = 1 / base^(2i/dim) in float32 and the
	// angle pos * inv_freq[i], as transformers does.
	RopeHF RopeStyle = iota
	// RopeGGML computes theta_scale = base^(-2/dim) and takes the angle
	// by repeated float32 multiplication, as ggml's rope cache does.
	RopeGGML
)

// Rope applies rotary position embeddings.
type Rope struct {
	half  int
	style RopeStyle
	// invFreq (RopeHF) or the single theta_scale (RopeGGML).
	invFreq    []float32
	thetaScale float32
}

// NewRope prepares rotary embeddings for head dimension dim and base theta.
func NewRope(dim int, theta float64, style RopeStyle) *Rope {
	r := &Rope{half: dim / 2, style: style, invFreq: make([]float32, dim/2)}
	for i := range r.invFreq {
		exp := float32(2*i) / float32(dim)
		r.invFreq[i] = float32(1 / math.Pow(theta, float64(exp)))
	}
	r.thetaScale = float32(math.Pow(theta, -2/float64(dim)))
	return r
}

// Apply rotates every head of vec (heads x dim, one token at position pos).
func (r *Rope) Apply(vec []float32, heads int, pos int) {
	r.Rotate(vec, heads, r.Angles(make([]float32, 2*r.half), pos))
}

// Angles writes the cosine and the sine of each pair's angle at position
// pos into cs (2*half values: cos, sin, cos, ...) and returns it. Every
// head and layer rotates a position by the same angles, so a pass computes
// them once a row (Rotate).
func (r *Rope) Angles(cs []float32, pos int) []float32 {
	cs = cs[:2*r.half]
	theta := float32(pos)
	for i := 0; i < r.half; i++ {
		ang := theta
		if r.style == RopeHF {
			ang = float32(pos) * r.invFreq[i]
		} else {
			theta *= r.thetaScale
		}
		cs[2*i] = float32(math.Cos(float64(ang)))
		cs[2*i+1] = float32(math.Sin(float64(ang)))
	}
	return cs
}

// Rotate rotates every head of vec (heads x dim, one token) by the angles
// cs of its position (Angles).
func (r *Rope) Rotate(vec []float32, heads int, cs []float32) {
	dim := 2 * r.half
	cs = cs[:dim]
	for h := 0; h < heads; h++ {
		v := vec[h*dim : (h+1)*dim]
		for i := 0; i < r.half; i++ {
			c, s := cs[2*i], cs[2*i+1]
			a, b := v[i], v[i+r.half]
			v[i] = a*c - b*s
			v[i+r.half] = b*c + a*s
		}
	}
}

// KVCache is one layer's keys and values for ctx positions, stored either
// as float32 (transformers' precision) or F16 (llama.cpp's default cache
// type, half the memory).
type KVCache struct {
	dim    int // kvHeads * headDim
	f16    bool
	k, v   []float32
	kh, vh []uint16
}

// NewKVCache allocates a cache of ctx positions of dim values each.
func NewKVCache(ctx, dim int, f16 bool) *KVCache {
	c := &KVCache{dim: dim, f16: f16}
	if f16 {
		c.kh, c.vh = make([]uint16, ctx*dim), make([]uint16, ctx*dim)
	} else {
		c.k, c.v = make([]float32, ctx*dim), make([]float32, ctx*dim)
	}
	return c
}

// Store writes the keys and values of position pos.
func (c *KVCache) Store(pos int, k, v []float32) {
	lo, hi := pos*c.dim, (pos+1)*c.dim
	if !c.f16 {
		copy(c.k[lo:hi], k)
		copy(c.v[lo:hi], v)
		return
	}
	toF16(c.kh[lo:hi], k)
	toF16(c.vh[lo:hi], v)
}

// toF16 rounds src to F16 into dst (as long as src) as tensor.F32ToF16
// does: to nearest even, overflow to infinity (a NaN stays a NaN; the
// vector conversion keeps its payload's top bits).
func toF16(dst []uint16, src []float32) {
	if toF16Fast(dst, src) {
		return
	}
	for i, x := range src {
		dst[i] = tensor.F32ToF16(x)
	}
}

// Bytes is the cache's memory footprint.
func (c *KVCache) Bytes() int {
	return 4*(len(c.k)+len(c.v)) + 2*(len(c.kh)+len(c.vh))
}

// Attention computes causal grouped-query attention for n query rows. Row
// t sits at position pos[t] of its sequence, whose cache caches[t] holds
// positions 0..pos[t]; rows of different sequences may share a batch. q and
// out are n x (heads*dim). The query heads that share a KV head are
// computed together, so each cached key and value row is read once per
// group. With an F16 cache the query is rounded to F16 for the Q·K
// products, as ggml does; softmax and the weighted sum of the values run in
// float32. (Rounding the probabilities to F16 too, as ggml's path without
// flash attention does, matched llama.cpp's argmax slightly worse on Q8_0
// (98.7% against 99.2% of positions) and flipped a near tie against the
// SafeTensors model.)
func (b *Backend) Attention(out, q []float32, caches []*KVCache, pos []int, n, heads, kvHeads, dim int) {
	maxLen := 0
	for _, p := range pos[:n] {
		maxLen = max(maxLen, p+1)
	}
	group := heads / kvHeads
	// Split a group's heads over several jobs only when there are fewer
	// groups than workers (decoding with few KV heads).
	split := 1
	if jobs := n * kvHeads; jobs < b.Threads() {
		split = min(group, (b.Threads()+jobs-1)/jobs)
	}
	b.at = attentionOp{
		out: out, q: q, caches: caches, pos: pos,
		heads: heads, kvHeads: kvHeads, dim: dim, maxLen: maxLen, split: split,
		scale: float32(1 / math.Sqrt(float64(dim))),
	}
	b.pool.Run(n*kvHeads*split, 1, b.atRun)
	b.at = attentionOp{}
}

// attentionOp is the attention in flight (see Attention).
type attentionOp struct {
	out, q                             []float32
	caches                             []*KVCache
	pos                                []int
	heads, kvHeads, dim, maxLen, split int
	scale                              float32
}

// attentionJobs runs jobs lo..hi-1; job = (row, KV head, part of the
// group's query heads).
func (b *Backend) attentionJobs(lo, hi, worker int) {
	op := &b.at
	dim, group := op.dim, op.heads/op.kvHeads
	per := (group + op.split - 1) / op.split
	qStride, kvStride := op.heads*dim, op.kvHeads*dim
	buf := b.rowBuf(worker, per*(op.maxLen+dim))
	for job := lo; job < hi; job++ {
		part := job % op.split
		t, g := job/op.split/op.kvHeads, job/op.split%op.kvHeads
		h0 := g*group + part*per
		nh := min(per, g*group+group-h0)
		if nh <= 0 {
			continue
		}
		c, L := op.caches[t], op.pos[t]+1
		off := g * dim // this group's slice of a cache row
		scores, qs := buf[:nh*L], buf[per*op.maxLen:per*op.maxLen+nh*dim]
		for i := range nh {
			qv := op.q[t*qStride+(h0+i)*dim:][:dim]
			dq := qs[i*dim : (i+1)*dim]
			if c.f16 {
				faRoundF16(dq, qv)
			} else {
				copy(dq, qv)
			}
		}
		for j := range L {
			r := j*kvStride + off
			for i := range nh {
				if c.f16 {
					scores[i*L+j] = quant.DotF16(c.kh[r:r+dim], qs[i*dim:(i+1)*dim]) * op.scale
				} else {
					scores[i*L+j] = quant.DotF32(qs[i*dim:(i+1)*dim], c.k[r:r+dim]) * op.scale
				}
			}
		}
		for i := range nh {
			Softmax(scores[i*L : (i+1)*L])
			clear(op.out[t*qStride+(h0+i)*dim:][:dim])
		}
		for i := range nh {
			o := op.out[t*qStride+(h0+i)*dim:][:dim]
			// One head over all keys with its sums in registers (the same
			// fused multiply-adds as AxpyF32's, key by key) where it can.
			if !c.f16 && faTilePVFast(o, scores[i*L:(i+1)*L], c.v[off:], kvStride, 1) {
				continue
			}
			for j := range L {
				r := j*kvStride + off
				if c.f16 {
					quant.AxpyF16(o, scores[i*L+j], c.vh[r:r+dim])
				} else {
					quant.AxpyF32(o, scores[i*L+j], c.v[r:r+dim])
				}
			}
		}
	}
}
