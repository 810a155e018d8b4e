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
	many   int // attnManyRows
}

// BenchmarkAttention times ggml's flash attention on the device with CUDA
// events around b.N back-to-back launches, at Qwen2.5-Coder-1.5B and -0.5B
// head shapes over an F16 cache of random values: a 512-row prompt pass
// (through attention_fa_tiled and the row-tiled kernel) and one decode row
// at positions 63, 127 and 511 (the one-chunk kernel, reading the pass
// size as the decode graph does), and 32 rows at positions 128-159 as 32
// streams' decode steps run them (attention_fa against attention_fa_m).
func BenchmarkAttention(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(7, 8))
	const ctx = 512
	for _, sh := range attnBenchShapes {
		kc, vc, q, out, scores, a := attnBenchData(bufs, r, sh, ctx, true)
		a.fa = true
		prompt := make([]Row, ctx)
		for p := range prompt {
			prompt[p] = Row{Pos: p}
		}
		promptInfo := bufs.ints(rowInfo(prompt...))
		cases := []attnBenchCase{
			{"pp512/attention_fa_tiled", ctx, promptInfo, true, 0},
			{"pp512/rows", ctx, promptInfo, false, 0},
		}
		for _, pos := range []int{63, 127, 511} {
			cases = append(cases, attnBenchCase{fmt.Sprintf("decode-pos%d", pos), 1, bufs.ints(rowInfo(Row{Pos: pos})), false, 0})
		}
		streams := make([]Row, 32)
		for i := range streams {
			streams[i] = Row{Pos: 128 + i}
		}
		streamInfo := bufs.ints(rowInfo(streams...))
		cases = append(cases, attnBenchCase{"streams32/attention_fa", 32, streamInfo, false, -1},
			attnBenchCase{"streams32/attention_fa_m", 32, streamInfo, false, 1})
		for _, c := range cases {
			b.Run(sh.name+"/"+c.name, func(b *testing.B) {
				defer func(legacy bool, many int) { attnLegacy, attnManyRows = legacy, many }(attnLegacy, attnManyRows)
				attnLegacy, attnManyRows = c.legacy, c.many
				at := a
				if c.rows > 1 {
					at.pass = c.rows
				}
				passp := bufs.ints([]int32{int32(c.rows)})
				us := launchTime(b, d, func() error { return d.attention(q, kc, vc, out, scores, c.info, passp, at, c.rows) })
				b.ReportMetric(us, "us/launch")
			})
		}
	}
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
	elem := 4
	if f16 {
		elem = 2
	}
	cache := func() devptr {
		v := randn(r, ctx*kvDim, 1)
		if f16 {
			return bufs.bytes(encodeKV(v, true))
		}
		return bufs.floats(v)
	}
	kc, vc = cache(), cache()
	q = bufs.floats(randn(r, ctx*qStride, 2))
	out, scores = bufs.poisoned(4*ctx*sh.heads*sh.dim), bufs.poisoned(4*ctx*sh.heads*ctx)
	a = attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx, scale: float32(1 / math.Sqrt(float64(sh.dim))),
		f16: f16, qStride: qStride, slotBytes: ctx * kvDim * elem}
	return kc, vc, q, out, scores, a
}
