package cuda

import "fmt"

// attnArgs are the shapes of attention.
type attnArgs struct {
	heads, kvHeads, dim, ctx int
	scale                    float32
	f16, fa                  bool
	qStride, slotBytes       int
	// pass is the pass's rows when the host knows them (0 in the decode
	// graph, which reads them from passp): 64 or more picks ggml's tiled
	// flash-attention kernel, run by the row-tiled kernels where the head
	// dimension has one (faRowsKernels), else by attention_fa_tiled.
	pass int
	// long says that a row of the pass may have more keys than the
	// split's threshold (splitMin, Model.long): only then is the split
	// attention launched, and over an F16 cache with ggml's numerics
	// attn_mma_f16 for passes of many rows (attnMMAF16).
	long bool
	// scoreRows is the rows of the scores scratch (heads x ctx floats
	// each; chunkRows); 0: every row of the pass (the tests' buffers).
	scoreRows int
}

// kvElem is the bytes of a KV cache element: 2 in an F16 cache, 4 in a
// float32 one.
func kvElem(f16 bool) int {
	if f16 {
		return 2
	}
	return 4
}

// fits reports whether the scores scratch holds perRow floats a row and
// head for m rows.
func (a attnArgs) fits(perRow, m int) bool {
	rows := a.scoreRows
	if rows <= 0 {
		rows = m
	}
	return perRow*m <= rows*a.ctx
}

// scratchRows fails when the scores scratch lacks a row of the pass's m
// for a kernel that keeps a row's scores there.
func (a attnArgs) scratchRows(name string, m int) error {
	if a.fits(a.ctx, m) {
		return nil
	}
	return fmt.Errorf("cuda: %s: a pass of %d rows outgrows the attention scratch of %d rows", name, m, a.scoreRows)
}

// faRowsKernels are the row-tiled flash-attention kernels (ggml's tiled
// kernel for blocks of faRows query rows, attention_fa_rows_DIM_ROWS in
// kernels/attention.cuh) by head dimension.
var faRowsKernels = map[int]string{64: "attention_fa_rows_64_32", 128: "attention_fa_rows_128_32"}

// faRows is the query rows a block of the row-tiled kernels takes.
const faRows = 32

// attnLegacy makes attention run attention_fa_tiled where it would run a
// row-tiled kernel (for the tests and benchmarks that compare them).
var attnLegacy bool

// faRowsShared is the dynamic shared memory of a row-tiled block: the
// query rows and a key tile transposed, the value tile, the tile's scores
// (rows padded by 4 floats).
func faRowsShared(dim int) int {
	return 4 * (dim*(faRows+4) + dim*(64+4) + 64*(dim+4) + 64*(faRows+4))
}

// ropeInAttention picks where a one-row pass of ggml's F16 attention runs
// RoPE and the KV store: 0 (the default) inside the attention's launch
// where that is the cluster kernel (attention_fa_cl_rope), else in a
// rope_store launch before it; 1 inside it always (attention_fa_rope for a
// block a head); -1 never. The same bits either way
// (TestDecodeVariantsEqual); a variable for the tests' comparisons.
//
// In the cluster kernel the rotations (their double sines and ggml's angle
// products taken before the PDL wait) go straight into shared memory, and
// the launch less a layer wins a little. H100, BenchmarkDecodeSynthetic,
// PTX before -> after in one run, two rounds (tok/s): 0.5B Q8_0 1407, 1410
// -> 1425, 1424; 1.5B Q8_0 776.3, 776.4 -> 782.8, 782.9; 0.5B Q4_K_M 1310,
// 1310 -> 1314, 1314; 1.5B Q4_K_M 838.4, 838.5 -> 838.4, 838.4. Asking for
// the cluster's cache rows (all an earlier step's then) before the wait
// measured the same (1427, 1316, 780.4, 838.4).
// attention_fa_rope loses (the heads' 12 blocks run every rotation before
// their attention, where rope_store spreads them): BenchmarkDecodeVariants
// (H100, angles after the wait, rope_store -> attention_fa_rope) 1.5B
// Q4_K_M 725.7, 722.0 -> 706.8, 706.6; 1.5B Q8_0 656.4, 664.3 -> 645.2,
// 642.5; 0.5B Q4_K_M 1184, 1187 -> 1146, 1134.
var ropeInAttention = 0

// attnQuant lets the one-row cluster attention encode its output as the o
// product's Q8_0 activation itself: each cluster block owning 32 output
// elements (one Q8_0 block; below head dimension 128 only the first dim/32
// blocks own any) encodes them in place (q80_warp, quantize's bytes), so
// that no quantize launch runs between the attention and the o product.
// H100, BenchmarkDecodeSynthetic, tok/s, two rounds, same call, noattnq ->
// attnq: 0.5B Q8_0 1425, 1425 -> 1465, 1468; 0.5B Q4_K_M 1354, 1354 ->
// 1414, 1418; 1.5B Q8_0 796.9, 796.9 -> 806.6, 806.4 (1.5B Q4_K_M's o
// product reads Q8_K: 854.1 -> 854.5, not taken). Gathering a block that
// spans several cluster blocks through distributed shared memory behind
// two more cluster barriers (the first version, with Q8_K at dimension 128
// over clusters of two heads) lost: 0.5B Q8_0 1421 -> 1362, 1.5B Q4_K_M
// 852.4 -> 818.5. A variable for the tests' comparisons and the benchmarks
// (APR_CUDA_TUNE "noattnq").
var attnQuant = true

// attnQuantQ80 reports whether the one-row cluster attention encodes its
// output into q80 (attnQuant) for an o product that reads Q8_0 (q80 set,
// q8k not): head dimensions of whole Q8_0 blocks, 32 output elements a
// cluster block (below 128, only the first dim/32 blocks have outputs).
func attnQuantQ80(a attnArgs, q80, q8k devptr) bool {
	return attnQuant && q80 != 0 && q8k == 0 && a.dim%32 == 0
}

// attentionRope runs ropeStore's and attention's work for a pass of one
// row in one launch (attention_fa_cl_rope, or attention_fa_rope) where
// attention would run ggml's one-row F16 flash attention and
// ropeInAttention allows; ran is false (nothing launched) otherwise.
// invFreq, thetaScale and style are ropeStore's. q80 and q8k are the
// buffers that quantize would encode out into (either may be 0); where
// the cluster kernel encodes it itself (attnQuantQ80), quantized is true
// and quantize need not run.
func (d *Device) attentionRope(q, kc, vc, out, scores, info, passp, invFreq devptr, thetaScale float32, style int,
	a attnArgs, m int, q80, q8k devptr) (ran, quantized bool, err error) {
	name, blocks, threads, shared, cluster := d.ropeAttnLaunch(a, m)
	if name == "" {
		return false, false, nil
	}
	if err := a.scratchRows(name, m); err != nil {
		return true, false, err
	}
	args := []any{q, kc, vc, out, scores, a.heads, a.kvHeads, a.dim, info, a.ctx, a.scale, passp, a.qStride,
		int64(a.slotBytes), invFreq, thetaScale, style}
	if cluster {
		quantized = attnQuantQ80(a, q80, q8k)
		if !quantized {
			q80 = 0
		}
		args = append(args, q80)
	}
	return true, quantized, d.launch2(name, blocks, 1, threads, shared, args...)
}

// ropeAttnLaunch is attentionRope's kernel for a pass of m rows, its
// blocks, threads and shared memory, and whether it is one of the cluster
// kernel's family (which take the o product's activation); name is ""
// where attentionRope launches nothing.
func (d *Device) ropeAttnLaunch(a attnArgs, m int) (name string, blocks, threads, shared int, cluster bool) {
	if ropeInAttention < 0 || m != 1 || !a.fa || !a.f16 || a.long || a.pass >= 64 || a.dim%8 != 0 || a.dim > 128 ||
		a.kvHeads < 1 || a.heads%a.kvHeads != 0 {
		return "", 0, 0, 0, false
	}
	name, blocks, threads, shared = "attention_fa_rope", a.heads, 256, faSharedBytes(a.dim)
	cluster = d.clusterRows(a, m) && d.has("attention_fa_cl_rope")
	pipe := cluster && faPipelined && a.dim%32 == 0 && d.has("attention_fa_pl_rope")
	switch {
	case pipe:
		name, blocks, threads, shared = "attention_fa_pl_rope", a.heads*(a.dim/32), faPipeThreads, faPipeBytes(a.dim)
		if faPipeIso {
			threads = faPipeIsoThreads
		}
	case cluster:
		name, blocks, shared = "attention_fa_cl_rope", a.heads*faCluster, faClusterBytes(a.dim)
	case ropeInAttention == 0 || !d.has(name):
		return "", 0, 0, 0, false
	}
	return name, blocks, threads, shared, cluster
}

// faPipelined picks attention_fa_pl_rope for the one-row attention where
// attention_fa_cl_rope would run and the head dimension is whole warps:
// no cluster, a block for each 32 output elements, every block scoring all
// keys while its chain warp runs the weights already made (kernels/
// attention.cuh). The same bits (TestAttentionRopeOneRow,
// TestDecodeVariantsEqual); a variable for the tests' comparisons
// (APR_CUDA_TUNE "nofapl"). H100, nofapl -> default, two rounds in one
// call, tok/s: BenchmarkDecodeSynthetic (positions 0-127) 0.5B Q8_0 1478,
// 1478 -> 1543, 1544; 0.5B Q4_K_M 1399, 1400 -> 1457, 1455; 1.5B Q8_0
// 823.0, 822.7 -> 844.9, 844.7; 1.5B Q4_K_M 882.0, 881.9 -> 898.5, 898.8;
// BenchmarkDecodeLong 1.5B Q4_K_M at positions 256 / 512 / 896 (+127)
// 777.6 / 693.4 / 600.3 -> 787.2 / 693.2 / 592.1: past ~600 keys the
// element chains (~35 cycles a key in both kernels) bound the launch, and
// four blocks reading all of the keys cost a little more than a cluster
// exchanging their scores.
var faPipelined = true

// faPipeIso launches attention_fa_pl_rope with faPipeIsoThreads threads:
// its chain warp alone on a scheduler while the producers score later
// tiles (H100, 1.5B Q4_K_M at 896 keys: the chain ~29 cycles a key against
// ~34 sharing one, ~18 in a loop alone). Decode at 896-1,023 keys +2.8%
// against the faPipeThreads layout, -0.2% at 0-127 (APR_CUDA_TUNE
// "fapl288" turns it off). Rows of one tile (up to faPipeKeys keys) take
// the faPipeThreads roles inside this launch (three warps idle), whose
// chain starts only after every key is scored: +0.25-0.3% at positions
// 0-127 (H100, two calls), bit-identical.
var faPipeIso = true

// faPipeKeys and faPipeThreads are attention_fa_pl_rope's key tile and
// block (FA_PL_KT, FA_PL_THREADS in kernels/attention.cuh): a producer
// thread a key, and the chain warp.
const (
	faPipeKeys    = 256
	faPipeThreads = faPipeKeys + 32
	// faPipeIsoThreads (FA_PL_ISO_THREADS) is the layout that gives the
	// chain warp a scheduler of its own (faPipeIso).
	faPipeIsoThreads = faPipeKeys + 128
)

// faPipeBytes is attention_fa_pl_rope's shared memory for head dimension
// dim: the query, faDecScores weights, the row's own key, two tiles of
// key rows and faDecScores rows of its 32 values; or attention_fa's body,
// which it runs for longer rows, if more.
func faPipeBytes(dim int) int {
	return max(faSharedBytes(dim), 4*(dim+faDecScores)+2*dim+2*2*faPipeKeys*dim+2*faDecScores*32)
}

// faTiledBytes is the shared memory of attention_fa's tiled part (ggml's
// tiled kernel, attention_fa_tiled): the query, accumulators, scores and
// 64 keys of head dimension dim.
func faTiledBytes(dim int) int { return 4 * (2*dim + 64 + 64*(dim+1)) }

// faSharedBytes is attention_fa's shared memory for head dimension dim:
// faStagedBytes with its tiles of 256 keys. attention_fa_rope and the
// split's attn_split_fin_fa run its body too.
func faSharedBytes(dim int) int { return faStagedBytes(dim, 256) }

// faDecScores is the keys whose scores and weights attention_fa's staged
// body keeps in shared memory (FA_DEC_SC in kernels/attention.cuh); rows
// of more keys keep them in the scores scratch.
const faDecScores = 1024

// faStagedBytes is the shared memory of attention_fa's body with staged
// tiles of kt keys: faTiledBytes, or, for the staged tiles (head dims up
// to 128, multiples of 8), the query, faDecScores scores and two buffers
// of kt rows of dim halves (key tiles, then value tiles) if more.
func faStagedBytes(dim, kt int) int {
	tiled := faTiledBytes(dim)
	if dim%8 != 0 || dim > 128 {
		return tiled
	}
	return max(tiled, 4*(dim+faDecScores)+2*2*kt*dim)
}

// faCluster is attention_fa_cl's blocks a head (FA_CL in
// kernels/attention.cuh).
const faCluster = 4

// faClusterBytes is attention_fa_cl's shared memory for head dimension
// dim: the query, faDecScores scores, its own 256 scores and key rows, and
// faDecScores rows of its dim/faCluster values; or attention_fa's body,
// which it runs for longer rows, if more.
func faClusterBytes(dim int) int {
	return max(faSharedBytes(dim), 4*(dim+faDecScores+256)+2*256*dim+2*faDecScores*faClusterElems(dim))
}

// faClusterElems is the most output elements of a head that one block of
// attention_fa_cl takes (fa_cl's e): a quarter of the head, or 32 where the
// block encodes them as a Q8_0 block (attnQuantQ80) and a quarter is less.
func faClusterElems(dim int) int { return max(dim/faCluster, min(dim, 32)) }

// attnCluster picks attention_fa_cl (ggml's one-chunk kernel, a head's
// rows of up to faDecScores keys split over a cluster of faCluster blocks)
// instead of attention_fa or attention_fa_m: 0 where the head dimension
// is a multiple of 8 x faCluster up to 128 and the pass's heads x
// faCluster x rows blocks fit the multiprocessors (decode steps of a few
// streams), 1 for every such head dimension, -1 never. The same bits
// either way; a variable for the tests' comparisons.
var attnCluster = 0

// clusterRows reports whether attention runs attention_fa_cl for a pass of
// m rows (attnCluster).
func (d *Device) clusterRows(a attnArgs, m int) bool {
	if attnCluster < 0 || a.dim%(8*faCluster) != 0 || a.dim > 128 || !d.has("attention_fa_cl") {
		return false
	}
	return attnCluster > 0 || a.heads*faCluster*m <= d.sms
}

// attention_fa_m's tiles, block and blocks a multiprocessor (FA_M_KT,
// FA_M_THREADS, FA_M_BLOCKS in kernels/attention.cuh).
const (
	faMKeys    = 128
	faMThreads = 160
	faMBlocks  = 3
)

// attnManyRows picks attention_fa_m, whose smaller tiles let three blocks
// share a multiprocessor, instead of attention_fa for passes below ggml's
// tiled kernel: 0 where the pass's head x row blocks are more than the
// multiprocessors but fit attention_fa_m's one wave (1.5B's 12 heads x 32
// streams: attention_fa's 134 KB blocks ran one a multiprocessor, in three
// waves), 1 always, -1 never. The same bits either way; a variable for the
// tests' comparisons. 0.5B's 14 x 32 blocks (two waves of attention_fa_m)
// stay: its 128-key tiles make rows past 128 keys take two rounds, and
// BenchmarkStreamsSynthetic (H100, 32 streams at positions 128-191, ms a
// pass, attention_fa -> _m for every pass of more blocks than
// multiprocessors) had 1.5B Q4_K_M 4.934 -> 4.811, 1.5B Q8_0 6.165 ->
// 5.771, but 0.5B Q4_K_M 3.680 -> 3.868.
var attnManyRows = 0

// manyRows reports whether attention runs attention_fa_m for a pass of m
// rows of heads query heads (attnManyRows).
func (d *Device) manyRows(heads, m int) bool {
	if attnManyRows != 0 || d.sms <= 0 {
		return attnManyRows > 0
	}
	return heads*m > d.sms && heads*m <= faMBlocks*d.sms
}

// attention runs m rows' causal attention: row r's query at q +
// r*qStride attends to its slot's cached positions 0..its position (info);
// out receives heads x dim floats per row; scores is scratch of m x heads x
// ctx floats. With fa (an F16 cache only) it is ggml's flash attention as
// cpu's FlashAttentionGGML computes it, for a pass of *passp rows (ggml's
// tiled kernel from 64 rows on).
func (d *Device) attention(q, kc, vc, out, scores, info, passp devptr, a attnArgs, m int) error {
	// Decode steps over a long context: split over ranges of keys
	// (attn_split.go); rows of few keys still run the kernels below.
	if ok, err := d.attnSplit(q, kc, vc, out, scores, info, passp, a, m); ok {
		return err
	}
	if a.f16 && (a.long || !a.fa) && attnMMAF16 && a.pass >= attnF32MinRows && a.qStride%4 == 0 && !attnLegacy {
		// An F16 cache, a prompt's pass with rows past ggml's exact
		// kernels' threshold (or without ggml's numerics): tensor-core
		// products at float32 level (kernels/attn_mma.cuh).
		if ok, err := d.attnMMA(q, kc, vc, out, scores, info, a, m); ok {
			return err
		}
	}
	if a.fa && a.f16 {
		if name, ok := faRowsKernels[a.dim]; ok && a.pass >= 64 && !attnLegacy {
			return d.launch2(name, a.heads, ceilDiv(m, faRows), 256, faRowsShared(a.dim),
				q, kc, vc, out, a.heads, a.kvHeads, info, m, a.scale, a.qStride, int64(a.slotBytes))
		}
		name, blocks, threads, shared := "attention_fa", a.heads, 256, faSharedBytes(a.dim)
		switch {
		case a.pass >= 64:
			name, shared = "attention_fa_tiled", faTiledBytes(a.dim)
		case d.clusterRows(a, m):
			name, blocks, shared = "attention_fa_cl", a.heads*faCluster, faClusterBytes(a.dim)
		case d.manyRows(a.heads, m) && d.has("attention_fa_m"):
			name, threads, shared = "attention_fa_m", faMThreads, faStagedBytes(a.dim, faMKeys)
		}
		if err := a.scratchRows(name, m); err != nil {
			return err
		}
		return d.launch2(name, blocks, m, threads, shared, q, kc, vc, out, scores, a.heads, a.kvHeads, a.dim,
			info, a.ctx, a.scale, passp, a.qStride, int64(a.slotBytes))
	}
	if name, ok := attnDecKernels[a.f16][a.dim]; ok && !a.fa && attnF32Dec && a.pass < attnF32MinRows && a.qStride%4 == 0 &&
		!attnLegacy && d.has(name) {
		// A float32 cache, or an F16 one without ggml's numerics, a pass
		// of few rows (decode): a block per row and head, keys spread
		// over its warps (kernels/attn_f32.cuh).
		return d.launch2(name, a.heads, m, 256, 0, q, kc, vc, out, a.heads, a.kvHeads, info, a.scale, a.qStride,
			int64(a.slotBytes))
	}
	if !a.f16 && attnMMA && a.pass >= attnF32MinRows && a.qStride%4 == 0 && !attnLegacy {
		// A float32 cache, a prompt's pass: tensor-core products with
		// split operands (kernels/attn_mma.cuh).
		if ok, err := d.attnMMA(q, kc, vc, out, scores, info, a, m); ok {
			return err
		}
	}
	if name, ok := attnF32RowsKernels[a.dim]; ok && !a.f16 && (a.pass >= attnF32MinRows || m == 1 && attnF32Decode) &&
		a.qStride%4 == 0 && !attnLegacy {
		// A float32 cache (transformers' numerics): the row-tiled kernel
		// (kernels/attn_f32.cuh), its shared memory laid out as
		// faRowsShared; a PTX without it runs attention.
		if d.has(name) {
			split := attnF32Split
			if m == 1 {
				split = 0
			}
			split, ranges := d.keyRanges(split, a, m)
			err := d.launch2(name, a.heads, ceilDiv(m, faRows)*ranges, 256, faRowsShared(a.dim),
				q, kc, vc, out, a.heads, a.kvHeads, info, m, a.scale, a.qStride, int64(a.slotBytes), scores, split)
			if err != nil || split == 0 {
				return err
			}
			return d.mergeRanges(scores, out, info, a, m, split)
		}
	}
	if err := a.scratchRows("attention", m); err != nil {
		return err
	}
	return d.launch2("attention", a.heads, m, 256, 4*a.dim, q, kc, vc, out, scores, a.heads, a.kvHeads, a.dim,
		info, a.ctx, a.scale, boolInt(a.f16), a.qStride, int64(a.slotBytes))
}

// attnF32MinRows is the fewest rows of a pass for which attention over a
// float32 cache runs the row-tiled attn_f32_rows kernels (each staged key
// tile shared by 32 rows) instead of attention (a block per row and head).
// A variable for the tests and benchmarks.
var attnF32MinRows = 64

// attnF32Split is the key positions of a block of attn_f32_rows when it
// splits the keys (a multiple of its 64-key tiles; 0: no split): the rows
// of a prompt's end then take several blocks instead of one (the causal
// tail), and attn_f32_merge adds their results. Off until measured: the
// one device run of the split had its partial rows misaligned (dim+2
// floats; now dim+4). A variable for the tests and benchmarks.
var attnF32Split = 0

// attnF32Dec runs the passes of fewer than attnF32MinRows rows (decode
// steps, in the graph too: pass 0) over a float32 cache on attn_f32_dec,
// and over an F16 one without ggml's flash attention on attn_f16_dec (a
// block per row and head, its warps taking the keys four at a time),
// before attnF32Decode is asked. A variable for the tests and benchmarks.
var attnF32Dec = true

// attnF32RowsKernels are the float32-cache attention kernels
// (kernels/attn_f32.cuh) by head dimension, as faRowsKernels for the F16
// cache; attnDecKernels the few-row kernels by cache (F16?) and head
// dimension, with transformers' numerics (the F16 cache's when ggml's
// flash attention is off: a SafeTensors model with --cache-type-k f16).
var (
	attnF32RowsKernels = map[int]string{64: "attn_f32_rows_64", 128: "attn_f32_rows_128"}
	attnDecKernels     = map[bool]map[int]string{
		false: {64: "attn_f32_dec_64", 128: "attn_f32_dec_128"},
		true:  {64: "attn_f16_dec_64", 128: "attn_f16_dec_128"},
	}
)

// attnF32Decode runs the one-row passes (decode steps, also in the
// captured decode graph: the kernel reads the row's position from the
// state) over a float32 cache on attn_f32_rows too, all keys in one
// block a head, instead of attention (H100, BenchmarkDecodeSynthetic with
// transformers' numerics: 0.5B 943 -> 1,009 tok/s, 1.5B 486 -> 489).
var attnF32Decode = true

// attnMMA runs the passes of attnF32MinRows rows and more over a float32
// cache on attn_mma (kernels/attn_mma.cuh: split F16 tensor-core products,
// float32-level results) instead of attn_f32_rows, where the PTX has it.
// A variable for the tests and benchmarks (APR_CUDA_TUNE=noattnmma). H100
// (f096c09, BenchmarkAttentionF32, one pp512 layer): 1.5B 115 -> 60.5 us,
// 0.5B 64.9 -> 35.9 us; BenchmarkPrefillAttention -hf pp512: 1.5B 49.1k ->
// 54.1k tok/s, 0.5B 109.4k -> 119.0k. Split F16 products (m16n8k16)
// instead of 3xTF32 (m16n8k8), H100, BenchmarkPrefillLong -hf: 1.5B pp4096
// 37.5k -> 43.6k, pp16384 18.9k -> 24.9k; 0.5B 76.6k -> 91.5k, 38.7k ->
// 51.4k.
var attnMMA = true

// attnMMARows is the query rows of an attn_mma block (64 or 32: the
// kernels compiled; APR_CUDA_TUNE=attnmma64 picks 64). 32: a pp512 pass of
// 12 heads is 192 blocks instead of 96 on an H100's 132 SMs
// (BenchmarkPrefillVariants, H100, two rounds: 1.5B BF16-hf 53.8k, 54.0k
// -> 57.5k, 57.5k tok/s; 0.5B 120.7k, 118.9k -> 114.4k, 123.5k).
var attnMMARows = 32

// attnMMASplit is the key positions of an attn_mma block in a pass with a
// row past the split's threshold (attnArgs.long; a multiple of its 64-key
// tiles; 0: no split): a long prompt's passes of a few hundred rows then
// take ranges of keys on separate blocks, merged by attn_f32_merge,
// instead of one block walking every key of its rows. The grid covers the
// whole cache (blocks of ranges past their rows' positions return at
// once), so a captured pass stays valid at other positions. A variable for
// the tests and benchmarks (APR_CUDA_TUNE=mmasplit=N).
var attnMMASplit = 1024

// attnMMASplitRows is the rows of an attn_mma block in a pass split into
// key ranges (attnMMARows otherwise; 0: attnMMARows too). H100, 32 -> 64
// rows, ranges of 1,024 keys: F16 cache, BenchmarkAttention pp4096-last512
// (us a launch) 1.5B 130.9 -> 111.1, 0.5B 100.6 -> 82.4; float32 cache,
// BenchmarkPrefillLong -hf (tok/s, two rounds) 1.5B pp16384 16.87k, 16.85k
// -> 18.84k, 18.84k; pp4096 36.7k, 36.8k -> 37.6k, 37.5k; 0.5B pp16384
// 35.8k, 35.9k -> 38.8k, 38.8k; pp4096 78.3k, 78.2k -> 77.1k, 65.3k (the
// one round below the others).
var attnMMASplitRows = 64

// keyRanges is the key ranges of split positions (a multiple of the
// kernel's key tiles; 0: none) that a row-tiled attention pass of m rows
// takes: split and ceil(ctx/split) where the ranges' partial results
// (dim+4 floats a row, head and range) fit in scores and attn_f32_merge is
// there to combine them, else 0 and 1.
func (d *Device) keyRanges(split int, a attnArgs, m int) (int, int) {
	if split <= 0 {
		return 0, 1
	}
	ranges := ceilDiv(a.ctx, split)
	if !a.fits(ranges*(a.dim+4), m) || !d.has("attn_f32_merge") {
		return 0, 1
	}
	return split, ranges
}

// mergeRanges combines the key ranges' partial results in scores into out
// (attn_f32_merge).
func (d *Device) mergeRanges(scores, out, info devptr, a attnArgs, m, split int) error {
	return d.launch2("attn_f32_merge", a.heads, m, a.dim, 0, scores, out, a.heads, a.dim, info, m, split)
}

// attnMMA runs attn_mma (a.f16: attn_mma_f16) for m rows, attnMMARows a
// block, split into ranges of attnMMASplit keys merged by attn_f32_merge
// where the pass is long and the ranges' partial results (dim+4 floats a
// row, head and range) fit in scores; ran is false (nothing launched)
// where the PTX lacks the kernel.
func (d *Device) attnMMA(q, kc, vc, out, scores, info devptr, a attnArgs, m int) (ran bool, err error) {
	split := attnMMASplit
	if !a.long || split%64 != 0 {
		split = 0
	}
	split, ranges := d.keyRanges(split, a, m)
	if ranges < 2 {
		split, ranges = 0, 1
	}
	rows := attnMMARows
	if split > 0 && attnMMASplitRows > 0 {
		rows = attnMMASplitRows
	}
	name, ok := attnMMAKernels[attnMMAKey{a.dim, rows, a.f16}]
	if !ok || !d.has(name) {
		return false, nil
	}
	err = d.launch2(name, a.heads, ceilDiv(m, rows)*ranges, 256, attnMMAShared(a.dim, rows, a.f16),
		q, kc, vc, out, a.heads, a.kvHeads, info, m, a.scale, a.qStride, int64(a.slotBytes), scores, split)
	if err != nil || split == 0 {
		return true, err
	}
	return true, d.mergeRanges(scores, out, info, a, m, split)
}

// attnMMAF16 runs the passes of attnF32MinRows rows and more over an F16
// cache on attn_mma_f16 (kernels/attn_mma.cuh: F16 tensor-core products,
// float32-level results, the CPU's Attention over an F16 cache) where
// ggml's exact kernels are not asked for or no longer bind: a pass with a
// row past attnSplitMinGGML keys (attnArgs.long), where the one-block
// decode attention gives way to the split too. Rows of fewer keys keep
// ggml's tiled kernel (attention_fa_rows), bit for bit as the CPU engine,
// so every reference prompt's pass stays exact. A variable for the tests
// and benchmarks (APR_CUDA_TUNE=noattnmma16).
var attnMMAF16 = true

// attnMMAKey picks an attn_mma kernel: head dimension, rows a block and
// the cache (F16 or float32).
type attnMMAKey struct {
	dim, rows int
	f16       bool
}

// attnMMAKernels are the attn_mma kernels by head dimension, rows and
// cache.
var attnMMAKernels = map[attnMMAKey]string{
	{64, 64, false}: "attn_mma_64_64", {64, 32, false}: "attn_mma_64_32",
	{128, 64, false}: "attn_mma_128_64", {128, 32, false}: "attn_mma_128_32",
	{64, 64, true}: "attn_mma_f16_64_64", {64, 32, true}: "attn_mma_f16_64_32",
	{128, 64, true}: "attn_mma_f16_128_64", {128, 32, true}: "attn_mma_f16_128_32",
}

// attnMMAShared is attn_mma's dynamic shared memory: two key and two
// value tiles of 64 rows and the block's rows' F16 queries (rows of dim+8
// halves; float32 cache: their hi and lo parts, key rows of dim+8 floats
// and value rows of dim+4; F16 cache: key and value rows of dim+8 halves).
func attnMMAShared(dim, rows int, f16 bool) int {
	if f16 {
		return 2 * (4*64 + rows) * (dim + 8)
	}
	return 4*2*64*(2*dim+12) + 2*2*rows*(dim+8)
}

// staticSharedAllowance is room for the attention kernels' static shared
// memory (flags, maxima, counters: ~1.2 KiB in attention_fa_pl_rope)
// beside the dynamic sizes below.
const staticSharedAllowance = 2 << 10

// sharedNeed is the most shared memory (bytes) a block of the attention
// kernels asks for with heads of dimension dim: the one-row kernels
// (attention_fa_pl_rope, the cluster, the staged one-block kernel) up to
// dimension 128, the row-tiled and tensor-core prompt kernels at 64 and
// 128, ggml's tiled kernel at any. At 128 that is attention_fa_pl_rope's
// ~197 KiB: Hopper-class GPUs let a block have 227 KiB, GPUs of 99 KiB
// (consumer Blackwell) would fail their first attention launch.
func sharedNeed(dim int) int {
	need := faTiledBytes(dim)
	if dim <= 128 {
		need = max(need, faSharedBytes(dim), faClusterBytes(dim))
		if dim%32 == 0 {
			need = max(need, faPipeBytes(dim))
		}
	}
	if _, ok := faRowsKernels[dim]; ok {
		need = max(need, faRowsShared(dim), attnMMAShared(dim, 64, false))
	}
	return need + staticSharedAllowance
}

// checkShared says why a device that lets a block have optin bytes of
// shared memory cannot run a model of head dimension dim (nil when it
// can): refused at load, the engine falls back to the CPU with this line,
// where the first attention launch would fail mid-run.
func checkShared(name string, optin, dim int) error {
	if need := sharedNeed(dim); optin < need {
		return fmt.Errorf("cuda: %s lets a block have %d KiB of shared memory; apr's attention kernels need %d KiB at head dimension %d",
			name, optin>>10, (need+1023)>>10, dim)
	}
	return nil
}
