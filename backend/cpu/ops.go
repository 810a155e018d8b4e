package cpu

import (
	"math"

	"github.com/apr-llm/apr/tensor"
)

// Backend runs the forward pass's operations on the CPU.
type Backend struct {
	pool    *Pool
	scratch [][]float32 // per-worker row buffers
}

// New returns a CPU backend using threads workers (< 1: all CPUs).
func New(threads int) *Backend {
	p := NewPool(threads)
	return &Backend{pool: p, scratch: make([][]float32, p.Threads())}
}

// Threads is the number of workers.
func (b *Backend) Threads() int { return b.pool.Threads() }

// Close stops the worker pool.
func (b *Backend) Close() { b.pool.Close() }

func (b *Backend) rowBuf(worker, n int) []float32 {
	if cap(b.scratch[worker]) < n {
		b.scratch[worker] = make([]float32, n)
	}
	return b.scratch[worker][:n]
}

// MatMul computes dst[t][r] = sum_c x[t][c] * w[r][c] for n input rows x
// (n x w.Cols) into dst (n x w.Rows): y = x · Wᵀ, as torch's Linear does.
// Output rows of W are split over the workers; each weight row is read once
// for all n inputs.
func (b *Backend) MatMul(dst []float32, w *Matrix, x []float32, n int) {
	in, out := w.Cols, w.Rows
	_ = x[n*in-1]
	_ = dst[n*out-1]
	if w.DType.Quantized() {
		b.matMulQuant(dst, w, x, n)
		return
	}
	grain := 16
	b.pool.Run(out, grain, func(lo, hi, worker int) {
		switch {
		case n == 1 && w.DType == tensor.BF16:
			for r := lo; r < hi; r++ {
				dst[r] = dotBF16(asU16(w.row(r)), x[:in])
			}
		default:
			buf := b.rowBuf(worker, in)
			for r := lo; r < hi; r++ {
				decodeRow(w.DType, w.row(r), buf)
				for t := 0; t < n; t++ {
					dst[t*out+r] = Dot(buf, x[t*in:(t+1)*in])
				}
			}
		}
	})
}

// RMSNorm writes x / rms(x) * weight for each of the n rows of x (row length
// len(weight)) into dst, computing as transformers does in float32.
func (b *Backend) RMSNorm(dst, x, weight []float32, n int, eps float32) {
	d := len(weight)
	for t := 0; t < n; t++ {
		row := x[t*d : (t+1)*d]
		var ss float32
		for _, v := range row {
			ss += v * v
		}
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

// SiLUMul sets gate[i] = silu(gate[i]) * up[i].
func SiLUMul(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// Softmax normalises x in place (max-subtracted, float32 like torch).
func Softmax(x []float32) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range x {
		x[i] *= inv
	}
}

// Rope holds cos/sin tables for rotary embeddings in the rotate-half layout
// of transformers (pairs (i, i+d/2)).
type Rope struct {
	half    int
	invFreq []float32
}

// NewRope prepares rotary embeddings for head dimension dim and base theta,
// computing inverse frequencies as transformers does (float32).
func NewRope(dim int, theta float64) *Rope {
	r := &Rope{half: dim / 2, invFreq: make([]float32, dim/2)}
	for i := range r.invFreq {
		exp := float32(2*i) / float32(dim)
		r.invFreq[i] = float32(1 / math.Pow(theta, float64(exp)))
	}
	return r
}

// Apply rotates every head of vec (heads x dim, one token at position pos).
func (r *Rope) Apply(vec []float32, heads int, pos int) {
	dim := 2 * r.half
	for i := 0; i < r.half; i++ {
		ang := float32(pos) * r.invFreq[i]
		c := float32(math.Cos(float64(ang)))
		s := float32(math.Sin(float64(ang)))
		for h := 0; h < heads; h++ {
			v := vec[h*dim : (h+1)*dim]
			a, b := v[i], v[i+r.half]
			v[i] = a*c - b*s
			v[i+r.half] = b*c + a*s
		}
	}
}

// Attention computes causal grouped-query attention for n query tokens at
// positions start..start+n-1 against a KV cache holding positions
// 0..start+n-1. q and out are n x (heads*dim); kc and vc are ctx x
// (kvHeads*dim).
func (b *Backend) Attention(out, q, kc, vc []float32, n, start, heads, kvHeads, dim int) {
	group := heads / kvHeads
	qStride := heads * dim
	kvStride := kvHeads * dim
	scale := float32(1 / math.Sqrt(float64(dim)))
	total := n * heads
	b.pool.Run(total, 1, func(lo, hi, worker int) {
		scores := b.rowBuf(worker, start+n)
		for job := lo; job < hi; job++ {
			t, h := job/heads, job%heads
			kvh := h / group
			qv := q[t*qStride+h*dim : t*qStride+(h+1)*dim]
			L := start + t + 1
			sc := scores[:L]
			for j := 0; j < L; j++ {
				sc[j] = Dot(qv, kc[j*kvStride+kvh*dim:j*kvStride+(kvh+1)*dim]) * scale
			}
			Softmax(sc)
			o := out[t*qStride+h*dim : t*qStride+(h+1)*dim]
			for i := range o {
				o[i] = 0
			}
			for j, p := range sc {
				vv := vc[j*kvStride+kvh*dim : j*kvStride+(kvh+1)*dim]
				for i, x := range vv {
					o[i] += p * x
				}
			}
		}
	})
}
