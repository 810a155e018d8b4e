package cuda

// attnSplitMin is the keys of a row above which a decode step's attention
// (a pass of fewer rows than the row-tiled kernels take, the captured
// decode graph included) runs split over ranges of keys
// (kernels/attn_split.cuh) instead of one block a head; rows of at most
// attnSplitMin keys run today's kernels unchanged (bit for bit as the
// CPU with GGUF numerics). The host launches the split kernels only for
// passes with a row of more keys (Model.long: the decode graph of such
// steps is a second graph), so short contexts pay no extra launch; inside
// a pass the choice is made on the device from each row's position (the
// tests launch the split for every pass: attnArgs.long). Negative: no
// split. A variable for the tests and
// benchmarks (TestFlashAttentionPasses' one-chunk rows reach 302 keys).
var attnSplitMin = 384

// attnSplitMinGGML is attnSplitMin for an F16 cache with ggml's flash
// attention (GGUF numerics). The split accumulates each range's values in
// float32, where ggml's CPU kernel (and the CPU engine, llama.cpp's CPU
// reference) rounds its accumulator to F16 at every key: past a few
// hundred keys the two differ by ~1e-2 x max|logit| on the shared models
// (raw_long_code's greedy continuation parts at its 5th step with the
// split at 384: H100 run of 2026-11-26), so GGUF models keep ggml's
// one-block kernel up to 1,024 keys (every reference prompt) and take the
// split past it, where one block a head costs most (1.5B Q4_K_M on an
// H100: 133 -> 621 tok/s at position 4,096).
var attnSplitMinGGML = 1024

// splitMin is the split's threshold with ggml's flash attention (fa: an
// F16 cache, GGUF numerics) or without (a float32 cache, or an F16 one
// with transformers' numerics).
func splitMin(fa bool) int {
	if fa {
		return attnSplitMinGGML
	}
	return attnSplitMin
}

// attnSplitPerSM is the split blocks a decode step's attention gives each
// multiprocessor (splitCount): two keep one block's loads going while the
// other uses its tile.
var attnSplitPerSM = 2

// attnSplitKernels are the split kernels by cache (F16?) and head
// dimension; attnSplitFinDec the kernels that run today's attention
// (attnDecKernels' body) or merge the ranges, by cache and head dimension,
// without ggml's flash attention (with it, attn_split_fin_fa, which takes
// attention_fa's parameters).
var (
	attnSplitKernels = map[bool]map[int]string{
		true:  {64: "attn_split_f16_64", 128: "attn_split_f16_128"},
		false: {64: "attn_split_f32_64", 128: "attn_split_f32_128"},
	}
	attnSplitFinDec = map[bool]map[int]string{
		false: {64: "attn_split_fin_f32_64", 128: "attn_split_fin_f32_128"},
		true:  {64: "attn_split_fin_f16_64", 128: "attn_split_fin_f16_128"},
	}
)

// attnSplitGroupMax is the most query heads a KV head may have for the
// split kernels (AS_GMAX).
const attnSplitGroupMax = 8

// splitCount is the key ranges (splits) a row's keys go by for each KV
// head in a pass of m rows: about attnSplitPerSM blocks a multiprocessor
// for the whole pass, at most one range a 32 keys of the context, and no
// more than the scores scratch holds partials for (dim+4 floats a range,
// row and head: a.fits); 0 when not one fits. The kernels cut a row of n
// keys into ranges of as_per(n, splits) keys (kernels/attn_split.cuh), so
// the same launch serves every position of the decode graph.
//
// The partials of row r lie at r x heads x splits x (dim+4) floats, not
// in the row's own heads x ctx: with ggml's flash attention the short
// rows' body (in attn_split_fin_fa, beside the long rows' merges) must
// then keep its scores in shared memory, which it does up to faDecScores
// keys. A threshold above that (APR_ATTN_SPLIT_MIN) gets 0: no split.
func splitCount(a attnArgs, m, sms int) int {
	if a.fa && splitMin(true) > faDecScores {
		return 0
	}
	if sms <= 0 {
		sms = 132 // an H100's
	}
	s := min(ceilDiv(attnSplitPerSM*sms, max(1, a.kvHeads*m)), ceilDiv(a.ctx, 32))
	for s > 0 && !a.fits(s*(a.dim+4), m) {
		s--
	}
	return s
}

// splitTile is the keys of a split block's staged tile (as_tile): 64 over
// an F16 cache, 32 over a float32 one.
func splitTile(elem int) int {
	if elem == 2 {
		return 64
	}
	return 32
}

// splitShared is a split block's dynamic shared memory (as_sizes in
// kernels/attn_split.cuh): two tiles of key rows (or the P.V parts' sums),
// two of value rows (dim elements + 16 bytes each), the group's queries,
// 8 weights a key of a tile.
func splitShared(dim, elem, group int) int {
	rs, kt := dim*elem+16, splitTile(elem)
	return max(2*kt*rs, (512/dim)*group*dim*4) + 2*kt*rs + group*dim*4 + kt*8*4
}

// attnSplit runs attention as the split kernels and the fin kernel when
// they apply to the pass (reporting whether they ran): a pass of few rows
// (decode; a.pass 0 in the graph) over a context longer than
// attnSplitMin, head dimension 64 or 128, at most attnSplitGroupMax query
// heads a KV head, with ggml's flash attention over an F16 cache or
// attnDecKernels' numerics (a float32 cache, or an F16 one without ggml's
// flash attention).
func (d *Device) attnSplit(q, kc, vc, out, scores, info, passp devptr, a attnArgs, m int) (bool, error) {
	lim := splitMin(a.fa)
	if !a.long || lim < 0 || a.ctx <= lim || !a.fits(a.ctx, m) || a.kvHeads < 1 || a.heads%a.kvHeads != 0 ||
		a.heads/a.kvHeads > attnSplitGroupMax || a.qStride%4 != 0 {
		return false, nil
	}
	var fin string
	switch {
	case a.fa && a.f16 && a.pass < 64:
		fin = "attn_split_fin_fa"
	case !a.fa && attnF32Dec && a.pass < attnF32MinRows && !attnLegacy:
		fin = attnDecFinName(a.f16, a.dim)
	}
	name := attnSplitKernels[a.f16][a.dim]
	splits := splitCount(a, m, d.sms)
	if fin == "" || name == "" || splits == 0 || !d.has(name) || !d.has(fin) {
		return false, nil
	}
	elem, group := kvElem(a.f16), a.heads/a.kvHeads
	pp := devptr(0) // ggml's kernels skip passes of 64 rows or more (its tiled kernel)
	if a.fa {
		pp = passp
	}
	err := d.launch2(name, a.kvHeads*splits, m, 256, splitShared(a.dim, elem, group),
		q, kc, vc, scores, a.heads, a.kvHeads, info, a.scale, a.qStride, int64(a.slotBytes), lim, splits, pp)
	if err != nil {
		return true, err
	}
	merge := 4 * splits
	if a.fa {
		merge = max(merge, faSharedBytes(a.dim)) // attention_fa's body runs the short rows
		return true, d.launch2(fin, a.heads, m, 256, merge, q, kc, vc, out, scores, a.heads, a.kvHeads, a.dim,
			info, a.ctx, a.scale, passp, a.qStride, int64(a.slotBytes), lim, splits)
	}
	return true, d.launch2(fin, a.heads, m, 256, merge, q, kc, vc, out, scores, a.heads, a.kvHeads, info, a.scale,
		a.qStride, int64(a.slotBytes), lim, splits)
}

// attnDecFinName is the fin kernel without ggml's flash attention for a
// float32 or (f16) an F16 cache and head dimension dim ("" for others, or
// where attnDecKernels has no kernel).
func attnDecFinName(f16 bool, dim int) string {
	if _, ok := attnDecKernels[f16][dim]; !ok {
		return ""
	}
	return attnSplitFinDec[f16][dim]
}
