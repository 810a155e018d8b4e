package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// attnBenchCase is one launch shape of BenchmarkAttention: rows of the
// pass (info), attention_fa_tiled forced.
type attnBenchCase struct {
	name   string
	rows   int
	info   devptr
	legacy bool
	many   int  // attnManyRows
	mma    int  // attn_mma_f16's block rows for a long pass (0: ggml's kernels)
	split  int  // its key ranges (attnMMASplit)
	single bool // attention_fa instead of attention_fa_cl (attnCluster -1)
}

// BenchmarkAttention times ggml's flash attention on the device with CUDA
// events around b.N back-to-back launches, at Qwen2.5-Coder-1.5B and -0.5B
// head shapes over an F16 cache of random values: a 512-row prompt pass
// (through attention_fa_tiled and the row-tiled kernel) and one decode row
// at positions 63, 127, 511 and 1,023 (the one-chunk kernel, reading the
// pass size as the decode graph does; a cluster of blocks a head, and one
// block a head), and 32 rows at positions 128-159 as 32
// streams' decode steps run them (attention_fa against attention_fa_m);
// and over a cache of 4,096 positions the last 512 rows of a 4,096-token
// prompt (pp4096-last512) and the pp512 pass as a long pass, through the
// row-tiled kernel and attn_mma_f16 (blocks of 32 and 64 rows; all keys a
// block or key ranges of 512 and 1,024 positions).
func BenchmarkAttention(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(7, 8))
	const ctx, long = 512, 4096
	rowsFrom := func(pos, n int) devptr {
		rows := make([]Row, n)
		for i := range rows {
			rows[i] = Row{Pos: pos + i}
		}
		return bufs.ints(rowInfo(rows...))
	}
	for _, sh := range attnBenchShapes {
		kc, vc, q, out, scores, a := attnBenchData(bufs, r, sh, ctx, true)
		a.fa = true
		promptInfo := rowsFrom(0, ctx)
		cases := []attnBenchCase{
			{name: "pp512/attention_fa_tiled", rows: ctx, info: promptInfo, legacy: true},
			{name: "pp512/rows", rows: ctx, info: promptInfo},
			{name: "pp512/mma16-32", rows: ctx, info: promptInfo, mma: 32},
			{name: "pp512/mma16-64", rows: ctx, info: promptInfo, mma: 64},
		}
		for _, pos := range []int{63, 127, 511} {
			cases = append(cases, attnBenchCase{name: fmt.Sprintf("decode-pos%d", pos), rows: 1, info: rowsFrom(pos, 1)},
				attnBenchCase{name: fmt.Sprintf("decode-pos%d/one-block", pos), rows: 1, info: rowsFrom(pos, 1), single: true})
		}
		streamInfo := rowsFrom(128, 32)
		cases = append(cases, attnBenchCase{name: "streams32/attention_fa", rows: 32, info: streamInfo, many: -1},
			attnBenchCase{name: "streams32/attention_fa_m", rows: 32, info: streamInfo, many: 1})
		lkc, lvc, lq, lout, lscores, la := attnBenchData(bufs, r, sh, long, true)
		la.fa = true
		lastInfo := rowsFrom(long-512, 512)
		for _, c := range []attnBenchCase{
			{name: "pp4096-last512/rows", rows: 512, info: lastInfo},
			{name: "pp4096-last512/mma16-32", rows: 512, info: lastInfo, mma: 32},
			{name: "pp4096-last512/mma16-64", rows: 512, info: lastInfo, mma: 64},
			{name: "pp4096-last512/mma16-32-split512", rows: 512, info: lastInfo, mma: 32, split: 512},
			{name: "pp4096-last512/mma16-32-split1024", rows: 512, info: lastInfo, mma: 32, split: 1024},
			{name: "pp4096-last512/mma16-64-split1024", rows: 512, info: lastInfo, mma: 64, split: 1024},
			{name: "decode-pos1023", rows: 1, info: rowsFrom(1023, 1)},
			{name: "decode-pos1023/one-block", rows: 1, info: rowsFrom(1023, 1), single: true},
		} {
			passp := bufs.ints([]int32{int32(c.rows)}) // here: the sub-benchmark's goroutine has no context yet
			b.Run(sh.name+"/"+c.name, func(b *testing.B) { benchAttention(b, d, c, passp, lq, lkc, lvc, lout, lscores, la) })
		}
		for _, c := range cases {
			passp := bufs.ints([]int32{int32(c.rows)})
			b.Run(sh.name+"/"+c.name, func(b *testing.B) { benchAttention(b, d, c, passp, q, kc, vc, out, scores, a) })
		}
	}
}

// benchAttention times case c of BenchmarkAttention.
func benchAttention(b *testing.B, d *Device, c attnBenchCase, passp, q, kc, vc, out, scores devptr, a attnArgs) {
	defer func(legacy bool, many int) { attnLegacy, attnManyRows = legacy, many }(attnLegacy, attnManyRows)
	defer save(&attnMMAF16)()
	defer save(&attnMMARows)()
	defer save(&attnMMASplit)()
	defer save(&attnMMASplitRows)()
	defer save(&attnCluster)()
	attnLegacy, attnManyRows, attnMMASplit, attnMMASplitRows = c.legacy, c.many, c.split, 0
	if c.single {
		attnCluster = -1
	}
	attnMMAF16 = c.mma > 0
	at := a
	if c.mma > 0 {
		attnMMARows, at.long = c.mma, true
	}
	if c.rows > 1 {
		at.pass = c.rows
	}
	us := launchTime(b, d, func() error { return d.attention(q, kc, vc, out, scores, c.info, passp, at, c.rows) })
	b.ReportMetric(us, "us/launch")
}

// attnBenchShapes are Qwen2.5-Coder-1.5B's and -0.5B's attention heads.
var attnBenchShapes = []attnBenchShape{{"1.5B", 12, 2, 128}, {"0.5B", 14, 2, 64}}

type attnBenchShape struct {
	name                string
	heads, kvHeads, dim int
}

// attnBenchData makes an attention benchmark's device data for shape sh and
// ctx positions: random keys and values (an F16 cache when f16, else
// float32), ctx rows of random q/k/v, poisoned outputs and scores, and the
// attention's shapes (one slot of ctx positions).
func attnBenchData(bufs *buffers, r *rand.Rand, sh attnBenchShape, ctx int, f16 bool) (kc, vc, q, out, scores devptr, a attnArgs) {
	kvDim := sh.kvHeads * sh.dim
	qStride := sh.heads*sh.dim + 2*kvDim
	elem := kvElem(f16)
	kc, vc = benchCache(bufs, r, ctx*kvDim, f16), benchCache(bufs, r, ctx*kvDim, f16)
	q = bufs.floats(randn(r, ctx*qStride, 2))
	out, scores = bufs.poisoned(4*ctx*sh.heads*sh.dim), bufs.poisoned(4*ctx*sh.heads*ctx)
	a = attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx, scale: float32(1 / math.Sqrt(float64(sh.dim))),
		f16: f16, qStride: qStride, slotBytes: ctx * kvDim * elem}
	return kc, vc, q, out, scores, a
}

// benchCache is n random cache elements on the device: F16 where f16,
// else float32.
func benchCache(bufs *buffers, r *rand.Rand, n int, f16 bool) devptr {
	v := randn(r, n, 1)
	if f16 {
		return bufs.bytes(encodeKV(v, true))
	}
	return bufs.floats(v)
}
