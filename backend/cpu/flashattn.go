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
//
// Every rounding of ggml's kernels is element-wise (F16 conversions, fused
// multiply-adds in a fixed order per output value, ggml's SIMD lane order
// for the F16 dot product), so the vectorised primitives below (AVX2/FMA/F16C
// assembly where the CPU has it, AVX-512 for two query heads at once, see
// flashattn_amd64.go) give exactly the values of their portable versions;
// flashattn_test.go compares both with the scalar per-row code this file
// replaced, with tolerance 0. The exponentials are those of the scalar
// code too: float32(math.Exp) in the F16 kernel (math.Exp's own steps,
// vectorised), ggml_v_expf in the tiled one.
const (
	ggmlFATileQ  = 64
	ggmlFATileKV = 64
	// faBlockRows is how many query rows one job of the tiled kernel takes:
	// each key and value tile is widened to float32 once per job and used by
	// all of its rows and all query heads of its KV head.
	faBlockRows = 16
)

// FlashAttentionGGML computes the causal grouped-query attention of
// Attention with ggml's flash-attention numerics (see above); the caches
// must be F16. n is the number of rows of the forward pass (llama.cpp's
// micro-batch), which picks the kernel.
func (b *Backend) FlashAttentionGGML(out, q []float32, caches []*KVCache, pos []int, n, heads, kvHeads, dim int) {
	maxLen := 0
	for _, p := range pos[:n] {
		maxLen = max(maxLen, p+1)
	}
	b.fa = faOp{
		out: out, q: q, caches: caches, pos: pos,
		n: n, heads: heads, kvHeads: kvHeads, dim: dim, maxLen: maxLen,
		scale: float32(1 / math.Sqrt(float64(dim))),
	}
	if n >= ggmlFATileQ {
		b.pool.Run(kvHeads*((n+faBlockRows-1)/faBlockRows), 1, b.faTiledRun)
	} else {
		b.pool.Run(n*kvHeads*((heads/kvHeads+1)/2), 1, b.faRun)
	}
	b.fa = faOp{}
}

// faOp is the flash attention in flight (kept on the Backend, like
// attentionOp, so a pass allocates nothing).
type faOp struct {
	out, q                         []float32
	caches                         []*KVCache
	pos                            []int
	n, heads, kvHeads, dim, maxLen int
	scale                          float32
}

// faJobs runs jobs lo..hi-1 of the one-chunk (F16) kernel; job = (row, KV
// head, pair of its query heads): the two heads of a pair share each key
// and value row as it is read. A group of odd size ends with a pair of one
// head twice (the second result unused), as fast as a lone head would be.
func (b *Backend) faJobs(lo, hi, worker int) {
	op := &b.fa
	dim, heads := op.dim, op.heads
	group := heads / op.kvHeads
	pairs := (group + 1) / 2
	qStride, kvStride := heads*dim, op.kvHeads*dim
	buf := b.rowBuf(worker, 4*dim+6*op.maxLen)
	qf0, qf1, acc0, acc1 := buf[:dim], buf[dim:2*dim], buf[2*dim:3*dim], buf[3*dim:4*dim]
	for job := lo; job < hi; job++ {
		t, g, pair := job/(op.kvHeads*pairs), job/pairs%op.kvHeads, job%pairs
		c := op.caches[t]
		L := op.pos[t] + 1
		sc := buf[4*dim:]
		s0, s1, ms0, ms1, vs := sc[:L], sc[L:2*L], sc[2*L:3*L], sc[3*L:4*L], sc[4*L:6*L]
		h0 := g*group + 2*pair
		h1 := min(h0+1, (g+1)*group-1)
		faRoundF16(qf0, op.q[t*qStride+h0*dim:][:dim]) // q_to_vec_dot: fp32 -> fp16
		faRoundF16(qf1, op.q[t*qStride+h1*dim:][:dim])
		k, v := c.kh[g*dim:], c.vh[g*dim:]
		faScores2F16(s0, s1, k, kvStride, qf0, qf1, op.scale)
		S0, S1 := faOnlineSoftmax2(s0, s1, ms0, ms1, vs)
		clear(acc0)
		clear(acc1)
		faMad2F16(acc0, acc1, v, kvStride, ms0, vs[:L], ms1, vs[L:])
		faScale(op.out[t*qStride+h0*dim:][:dim], acc0, faInv(S0))
		if h1 != h0 {
			faScale(op.out[t*qStride+h1*dim:][:dim], acc1, faInv(S1))
		}
	}
}

// faInv is 1/S, 0 for S = 0 (a row that attended to nothing).
func faInv(S float32) float32 {
	if S == 0 {
		return 0
	}
	return 1 / S
}

// fma32 is a float32 fused multiply-add a*b + c, rounded once as the
// hardware's VFMADD does. The product of two float32 is exact in float64;
// the float64 sum is rounded to odd (its exact error, by TwoSum, decides
// the last bit), after which rounding to float32 cannot round twice.
func fma32(a, b, c float32) float32 {
	p, z := float64(a)*float64(b), float64(c)
	s := p + z
	bb := s - p
	e := (p - (s - bb)) + (z - bb)
	if e != 0 && e == e { // inexact (and not Inf/NaN): round to odd
		u := math.Float64bits(s)
		if u&1 == 0 {
			if (e > 0) == (s > 0) {
				u++
			} else {
				u--
			}
			s = math.Float64frombits(u)
		}
	}
	return float32(s)
}

func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// faOnlineSoftmax2 runs the one-chunk kernel's online softmax over the
// scores s0 and s1 of two query heads (keys 0..L-1): for each key the
// factor ms[j] that rescales the accumulated values (a new maximum;
// otherwise 1) and the weight vs[j] of its value row (1 for a new maximum),
// vs holding the first head's L weights, then the second's. It returns the
// two sums. The running maxima go first, then every exponential at once,
// then the two sums, whose chains of additions interleave.
func faOnlineSoftmax2(s0, s1, ms0, ms1, vs []float32) (S0, S1 float32) {
	L := len(s0)
	vs0, vs1 := vs[:L], vs[L:2*L]
	faSoftmaxArgs(s0, ms0, vs0)
	faSoftmaxArgs(s1, ms1, vs1)
	faExp(vs[:2*L])
	return faSoftmaxSum2(ms0[:L], ms1[:L], vs0, vs1)
}

// faSoftmaxArgs sets vs[j] to the argument of key j's exponential: Mold - M
// where score j is a new maximum (ms[j] = 0 marks it), else s[j] - M.
func faSoftmaxArgs(s, ms, vs []float32) {
	if faSoftmaxArgsFast(s, ms, vs) {
		return
	}
	ms, vs = ms[:len(s)], vs[:len(s)]
	M := float32(math.Inf(-1))
	for j, x := range s {
		d := x - M
		vs[j], ms[j] = d, 1
		if x > M {
			vs[j], ms[j] = -d, 0 // Mold - M
			M = x
		}
	}
}

// faSoftmaxSum2 turns the exponentials vs0, vs1 of two heads (ms marking
// new maxima as faSoftmaxArgs left them) into the factors ms and weights
// vs of faOnlineSoftmax2 and returns the two sums S = S*ms + vs, the
// product rounded before the sum (never fused); the two chains of additions
// interleave.
func faSoftmaxSum2(ms0, ms1, vs0, vs1 []float32) (S0, S1 float32) {
	if s0, s1, ok := faSoftmaxSum2Fast(ms0, ms1, vs0, vs1); ok {
		return s0, s1
	}
	ms1, vs0, vs1 = ms1[:len(ms0)], vs0[:len(ms0)], vs1[:len(ms0)]
	for j := range ms0 {
		if ms0[j] != 0 {
			S0 += vs0[j] // S*1 + v
		} else {
			ms0[j], vs0[j] = vs0[j], 1
			S0 = float32(S0*ms0[j]) + 1
		}
		if ms1[j] != 0 {
			S1 += vs1[j]
		} else {
			ms1[j], vs1[j] = vs1[j], 1
			S1 = float32(S1*ms1[j]) + 1
		}
	}
	return S0, S1
}

// faExp sets x[i] = expf(x[i]).
func faExp(x []float32) {
	for i := faExpFast(x); i < len(x); i++ {
		x[i] = expf(x[i])
	}
}

// faRoundF16 sets dst[i] to src[i] rounded to F16.
func faRoundF16(dst, src []float32) {
	if faRoundF16Fast(dst, src) {
		return
	}
	for i, v := range src {
		dst[i] = tensor.F16ToF32(tensor.F32ToF16(v))
	}
}

// faScale sets dst[i] = src[i] * s.
func faScale(dst, src []float32, s float32) {
	if faScaleFast(dst, src, s) {
		return
	}
	for i, v := range src {
		dst[i] = v * s
	}
}

// faScoresF16 sets s[j] = ggml_vec_dot_f16(k row j, q) * scale for the
// F16 key rows k[j*stride:][:len(q)].
func faScoresF16(s []float32, k []uint16, stride int, q []float32, scale float32) {
	if faScoresF16Fast(s, k, stride, q, scale) {
		return
	}
	dim := len(q)
	for j := range s {
		s[j] = dotF16GGML(k[j*stride:][:dim], q) * scale
	}
}

// faMadF16 accumulates the value rows v[j*stride:][:len(acc)] into acc
// as ggml's F16 VKQ16 does: for each key j, acc *= ms[j] when ms[j] is not 1
// (ggml_vec_scale_f16), then acc += v * vs[j] (ggml_vec_mad_f16), every
// update rounded to F16. acc holds F16 values widened to float32.
func faMadF16(acc []float32, v []uint16, stride int, ms, vs []float32) {
	if faMadF16Fast(acc, v, stride, ms, vs) {
		return
	}
	for j, m := range ms {
		if m != 1 {
			for i, a := range acc {
				acc[i] = tensor.F16ToF32(tensor.F32ToF16(a * m))
			}
		}
		vr := v[j*stride:][:len(acc)]
		for i, a := range acc {
			acc[i] = tensor.F16ToF32(tensor.F32ToF16(fma32(tensor.F16ToF32(vr[i]), vs[j], a)))
		}
	}
}

// faScores2F16 is faScoresF16 for two query heads q0, q1 of one KV head.
func faScores2F16(s0, s1 []float32, k []uint16, stride int, q0, q1 []float32, scale float32) {
	if faScores2F16Fast(s0, s1, k, stride, q0, q1, scale) {
		return
	}
	faScoresF16(s0, k, stride, q0, scale)
	faScoresF16(s1, k, stride, q1, scale)
}

// faMad2F16 is faMadF16 for two query heads of one KV head.
func faMad2F16(acc0, acc1 []float32, v []uint16, stride int, ms0, vs0, ms1, vs1 []float32) {
	if faMad2F16Fast(acc0, acc1, v, stride, ms0, vs0, ms1, vs1) {
		return
	}
	faMadF16(acc0, v, stride, ms0, vs0)
	faMadF16(acc1, v, stride, ms1, vs1)
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

// faTiledJobs runs jobs lo..hi-1 of the tiled (float32) kernel; job = (KV
// head, block of faBlockRows query rows). ggml_compute_forward_flash_attn_ext_tiled
// for each row and query head of the group: key tiles of 64 at multiples of
// 64, tiles past the row's position fully masked (skipped), keys past it in
// its last tile masked.
func (b *Backend) faTiledJobs(lo, hi, worker int) {
	op := &b.fa
	dim, heads, group := op.dim, op.heads, op.heads/op.kvHeads
	qStride, kvStride := heads*dim, op.kvHeads*dim
	blocks := (op.n + faBlockRows - 1) / faBlockRows
	states := faBlockRows * group
	buf := b.rowBuf(worker, 2*ggmlFATileKV*dim+2*ggmlFATileKV+states*(dim+2))
	kt, vt := buf[:ggmlFATileKV*dim], buf[ggmlFATileKV*dim:2*ggmlFATileKV*dim]
	kq0 := buf[2*ggmlFATileKV*dim:][:ggmlFATileKV]
	kq1 := buf[2*ggmlFATileKV*dim+ggmlFATileKV:][:ggmlFATileKV]
	accs := buf[2*ggmlFATileKV*dim+2*ggmlFATileKV:][:states*dim]
	sm := buf[2*ggmlFATileKV*dim+2*ggmlFATileKV+states*dim:][:2*states]
	ninf := float32(math.Inf(-1))
	for job := lo; job < hi; job++ {
		g, blk := job/blocks, job%blocks
		t0, t1 := blk*faBlockRows, min((blk+1)*faBlockRows, op.n)
		off := g * dim
		maxP := 0
		for t := t0; t < t1; t++ {
			maxP = max(maxP, op.pos[t])
		}
		clear(accs)
		for i := range states {
			sm[2*i], sm[2*i+1] = 0, ninf // S, M
		}
		for ic := 0; ic <= maxP; ic += ggmlFATileKV {
			var cur *KVCache // the cache whose tile kt/vt hold
			for t := t0; t < t1; t++ {
				p, c := op.pos[t], op.caches[t]
				if ic > p {
					continue
				}
				if c != cur {
					nk := min(ggmlFATileKV, len(c.kh)/kvStride-ic)
					faTileLoad(kt, vt, c.kh[ic*kvStride+off:], c.vh[ic*kvStride+off:], kvStride, nk, dim)
					cur = c
				}
				nk := min(ggmlFATileKV, p+1-ic)
				for h := 0; h < group; h += 2 { // query heads by pairs
					h1 := min(h+1, group-1)
					st := (t-t0)*group + h
					faTileScores2(kq0, kq1, op.q[t*qStride+(g*group+h)*dim:][:dim],
						op.q[t*qStride+(g*group+h1)*dim:][:dim], kt, nk, op.scale) // simd_gemm: FMA chain over dk
					faTileStep(accs[st*dim:][:dim], &sm[2*st], &sm[2*st+1], kq0, vt, nk)
					if h1 != h {
						faTileStep(accs[(st+1)*dim:][:dim], &sm[2*st+2], &sm[2*st+3], kq1, vt, nk)
					}
				}
			}
		}
		for t := t0; t < t1; t++ {
			for h := range group {
				st := (t-t0)*group + h
				faScale(op.out[t*qStride+(g*group+h)*dim:][:dim], accs[st*dim:][:dim], faInv(sm[2*st]))
			}
		}
	}
}

// faTileLoad widens the key and value rows k[j*stride:][:dim] and
// v[j*stride:][:dim] of one tile's first nk keys to float32: keys
// transposed into kt (dim rows of 64 keys, zero past nk, so that the lanes
// of masked keys compute on plain numbers), values as rows of dim into vt.
func faTileLoad(kt, vt []float32, k, v []uint16, stride, nk, dim int) {
	for j := faTileLoadFast(kt, vt, k, v, stride, nk, dim); j < nk; j++ {
		for d, h := range k[j*stride:][:dim] {
			kt[d*ggmlFATileKV+j] = tensor.F16ToF32(h)
		}
		for d, h := range v[j*stride:][:dim] {
			vt[j*dim+d] = tensor.F16ToF32(h)
		}
	}
	if nk < ggmlFATileKV {
		for d := range dim {
			clear(kt[d*ggmlFATileKV+nk : (d+1)*ggmlFATileKV])
		}
	}
}

// faTileStep is one key tile of the tiled kernel for one query row, after
// its scores kq (faTileScores2): the row's running sum *S, maximum *M and
// accumulator acc are updated with the tile's first nk keys (values vt from
// faTileLoad); kq is overwritten.
func faTileStep(acc []float32, S, M *float32, kq, vt []float32, nk int) {
	tileMax := faTileMax(kq, nk)
	if math.IsInf(float64(tileMax), -1) {
		return
	}
	ms := float32(1)
	Mnew := max(*M, tileMax)
	if Mnew > *M {
		ms = expf(*M - Mnew)
		*S *= ms
	}
	*M = Mnew
	*S = float32(float64(*S) + faTileSoftmax(kq, Mnew))
	faTilePV(acc, kq[:nk], vt, len(acc), ms) // simd_gemm: VKQ += P·V, FMA chain over keys
}

// faTileScores2 is faTileScores for two queries q0 and q1 (the same one
// twice is fine).
func faTileScores2(kq0, kq1, q0, q1, kt []float32, nk int, scale float32) {
	if faTileScores2Fast(kq0, kq1, q0, q1, kt, scale) {
		return
	}
	faTileScores(kq0, q0, kt, nk, scale)
	faTileScores(kq1, q1, kt, nk, scale)
}

// faTileMax sets the scores of masked keys (kq[nk:]) to -Inf and returns
// the maximum of the others.
func faTileMax(kq []float32, nk int) float32 {
	if m, ok := faTileMaxFast(kq, nk); ok {
		return m
	}
	ninf := float32(math.Inf(-1))
	tileMax := ninf
	for tk := range kq {
		if tk >= nk {
			kq[tk] = ninf
			continue
		}
		tileMax = max(tileMax, kq[tk])
	}
	return tileMax
}

// faTileScores sets kq[tk] = (q · key tk) * scale for the tile's keys
// tk < nk (kt transposed by faTileLoad), the products summed in feature
// order with fused multiply-adds; the other entries of kq are left
// undefined.
func faTileScores(kq, q, kt []float32, nk int, scale float32) {
	if faTileScoresFast(kq, q, kt, scale) {
		return
	}
	for tk := range nk {
		var s float32
		for d, x := range q {
			s = fma32(x, kt[d*ggmlFATileKV+tk], s)
		}
		kq[tk] = s * scale
	}
}

// faTileSoftmax is ggml_vec_soft_max_f32 over the 64 scores of a tile:
// kq[i] = ggml_v_expf(kq[i] - M); it returns their sum, 16-lane float sums
// (AVX-512's reduce order) added in double.
func faTileSoftmax(kq []float32, M float32) float64 {
	if sum, ok := faTileSoftmaxFast(kq, M); ok {
		return sum
	}
	return faTileSoftmaxGo(kq, M)
}

// faTileSoftmaxGo is faTileSoftmax's portable code.
func faTileSoftmaxGo(kq []float32, M float32) float64 {
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
	return sum
}

// faTilePV scales acc by ms, then adds p[tk] * value row tk of vt (rows
// vt[tk*stride:][:len(acc)]) for every tk < len(p), one fused multiply-add
// per key in key order.
func faTilePV(acc, p, vt []float32, stride int, ms float32) {
	if faTilePVFast(acc, p, vt, stride, ms) {
		return
	}
	for i := range acc {
		acc[i] *= ms
	}
	for tk, pk := range p {
		for d, x := range vt[tk*stride:][:len(acc)] {
			acc[d] = fma32(pk, x, acc[d])
		}
	}
}
