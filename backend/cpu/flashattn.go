package cpu

import (
	"math"

	"github.com/apr-llm/apr/tensor"
)

// ggml's CPU flash attention (ggml-cpu/ops.cpp,
// ggml_compute_forward_flash_attn_ext_f16), which llama.cpp runs by default:
// its flash_attn_type AUTO enables flash attention whenever the backend
// supports it, and the CPU backend does. ggml picks one of two kernels by the
// number of query rows in the micro-batch (neq1):
//
//   - fewer than GGML_FA_TILE_Q (64) rows, e.g. every decode step and short
//     prompts: ..._f16_one_chunk. The query is rounded to F16 (K's vec_dot
//     type), Q·K is ggml_vec_dot_f16, the softmax is online (expf per key) and
//     the weighted sum of the values accumulates in an F16 vector (VKQ16:
//     ggml_vec_mad_f16 / ggml_vec_scale_f16 round every update to F16);
//   - 64 rows or more: ..._tiled. Q stays float32, K and V are widened to
//     float32, keys go by tiles of GGML_FA_TILE_KV (64) with a float32
//     Q·Kᵀ and P·V (simd_gemm: fused multiply-adds in key/feature order)
//     and a float32 accumulator rescaled per tile.
//
// So llama.cpp's logits for one token prefix depend on the prompt length (a
// prompt of 42 tokens runs the F16 kernel, one of 67 the float32 one), and
// apr reproduces that choice.
const (
	ggmlFATileQ  = 64
	ggmlFATileKV = 64
)

// FlashAttentionGGML computes the causal grouped-query attention of
// Attention with ggml's flash-attention numerics (see above); the caches
// must be F16. n is the number of rows of the forward pass (llama.cpp's
// micro-batch), which picks the kernel.
func (b *Backend) FlashAttentionGGML(out, q []float32, caches []*KVCache, pos []int, n, heads, kvHeads, dim int) {
	b.fa = faOp{
		out: out, q: q, caches: caches, pos: pos,
		heads: heads, kvHeads: kvHeads, dim: dim,
		scale: float32(1 / math.Sqrt(float64(dim))),
		tiled: n >= ggmlFATileQ,
	}
	b.pool.Run(n*heads, 1, b.faRun)
	b.fa = faOp{}
}

// faOp is the flash attention in flight (kept on the Backend, like
// attentionOp, so a pass allocates nothing).
type faOp struct {
	out, q              []float32
	caches              []*KVCache
	pos                 []int
	heads, kvHeads, dim int
	scale               float32
	tiled               bool
}

// faJobs runs jobs lo..hi-1; job = (row, query head).
func (b *Backend) faJobs(lo, hi, worker int) {
	op := &b.fa
	dim, heads := op.dim, op.heads
	group := heads / op.kvHeads
	qStride, kvStride := heads*dim, op.kvHeads*dim
	buf := b.rowBuf(worker, 3*dim+ggmlFATileKV)
	qf, acc, kq := buf[:dim], buf[dim:2*dim], buf[2*dim:2*dim+ggmlFATileKV]
	acc16 := b.halfBuf(worker, dim)
	for job := lo; job < hi; job++ {
		t, h := job/heads, job%heads
		c := op.caches[t]
		off := (h / group) * dim
		qv := op.q[t*qStride+h*dim : t*qStride+(h+1)*dim]
		o := op.out[t*qStride+h*dim : t*qStride+(h+1)*dim]
		if op.tiled {
			faTiledRow(o, qv, c, op.pos[t], off, kvStride, op.scale, acc, kq)
		} else {
			faOneChunkRow(o, qv, c, op.pos[t], off, kvStride, op.scale, qf, acc16)
		}
	}
}

// fma32 is a float32 fused multiply-add a*b + c.
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// faOneChunkRow is ggml_compute_forward_flash_attn_ext_f16_one_chunk for one
// query row of one head over keys 0..p (the causal mask skips the rest).
func faOneChunkRow(o, qv []float32, c *KVCache, p, off, kvStride int, scale float32, qf []float32, acc []uint16) {
	dim := len(qv)
	for i, v := range qv { // q_to_vec_dot: fp32 -> fp16
		qf[i] = tensor.F16ToF32(tensor.F32ToF16(v))
	}
	clear(acc)
	S, M := float32(0), float32(math.Inf(-1))
	for j := 0; j <= p; j++ {
		r := j*kvStride + off
		s := dotF16GGML(c.kh[r:r+dim], qf) * scale
		ms, vs := float32(1), float32(1)
		if s > M {
			Mold := M
			M = s
			ms = expf(Mold - M)
			for i, a := range acc { // ggml_vec_scale_f16
				acc[i] = tensor.F32ToF16(tensor.F16ToF32(a) * ms)
			}
		} else {
			vs = expf(s - M)
		}
		v := c.vh[r : r+dim]
		for i, a := range acc { // ggml_vec_mad_f16
			acc[i] = tensor.F32ToF16(fma32(tensor.F16ToF32(v[i]), vs, tensor.F16ToF32(a)))
		}
		S = S*ms + vs
	}
	inv := float32(0)
	if S != 0 {
		inv = 1 / S
	}
	for i, a := range acc {
		o[i] = tensor.F16ToF32(a) * inv
	}
}

// dotF16GGML is ggml_vec_dot_f16 on a 64-wide SIMD step (AVX-512: four
// 16-lane accumulators, reduced pairwise, then across lanes).
func dotF16GGML(k []uint16, q []float32) float32 {
	n := len(q)
	k = k[:n]
	if n%64 != 0 {
		var s float32
		for i, x := range k {
			s = fma32(tensor.F16ToF32(x), q[i], s)
		}
		return s
	}
	var lanes [4][16]float32
	for i := 0; i < n; i += 64 {
		for j := range 4 {
			for l := range 16 {
				e := i + 16*j + l
				lanes[j][l] = fma32(tensor.F16ToF32(k[e]), q[e], lanes[j][l])
			}
		}
	}
	var v [16]float32
	for l := range 16 {
		v[l] = (lanes[0][l] + lanes[2][l]) + (lanes[1][l] + lanes[3][l])
	}
	for w := 8; w >= 1; w /= 2 { // _mm512_reduce_add_ps
		for l := 0; l < w; l++ {
			v[l] += v[l+w]
		}
	}
	return v[0]
}

// faTiledRow is ggml_compute_forward_flash_attn_ext_tiled for one query row
// of one head over keys 0..p: key tiles of 64 at multiples of 64, tiles past
// p fully masked (skipped).
func faTiledRow(o, qv []float32, c *KVCache, p, off, kvStride int, scale float32, acc, kq []float32) {
	dim := len(qv)
	clear(acc)
	S, M := float32(0), float32(math.Inf(-1))
	ninf := float32(math.Inf(-1))
	for ic := 0; ic <= p; ic += ggmlFATileKV {
		nk := min(ggmlFATileKV, p+1-ic)
		tileMax := ninf
		for tk := 0; tk < ggmlFATileKV; tk++ {
			if tk >= nk {
				kq[tk] = ninf
				continue
			}
			r := (ic+tk)*kvStride + off
			kr := c.kh[r : r+dim]
			var s float32
			for d, x := range qv { // simd_gemm: FMA chain over dk
				s = fma32(x, tensor.F16ToF32(kr[d]), s)
			}
			s *= scale
			kq[tk] = s
			tileMax = max(tileMax, s)
		}
		if tileMax == ninf {
			continue
		}
		Mnew := max(M, tileMax)
		if Mnew > M {
			ms := expf(M - Mnew)
			for i := range acc {
				acc[i] *= ms
			}
			S *= ms
		}
		M = Mnew
		// ggml_vec_soft_max_f32: ggml_v_expf(x - M), 16-lane float sums
		// (AVX-512's reduce order) added in double.
		var sum float64
		for l0 := 0; l0 < ggmlFATileKV; l0 += 16 {
			var v [16]float32
			for l := range 16 {
				e := GGMLExpf(kq[l0+l] - M)
				kq[l0+l] = e
				v[l] = e
			}
			for w := 8; w >= 1; w /= 2 {
				for l := 0; l < w; l++ {
					v[l] += v[l+w]
				}
			}
			sum += float64(v[0])
		}
		S = float32(float64(S) + sum)
		for tk := 0; tk < nk; tk++ { // simd_gemm: VKQ += P·V, FMA chain over keys
			r := (ic+tk)*kvStride + off
			v := c.vh[r : r+dim]
			pk := kq[tk]
			for d := range acc {
				acc[d] = fma32(pk, tensor.F16ToF32(v[d]), acc[d])
			}
		}
	}
	inv := float32(0)
	if S != 0 {
		inv = 1 / S
	}
	for i, a := range acc {
		o[i] = a * inv
	}
}
