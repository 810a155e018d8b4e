package cuda

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkAttentionF32 times one layer's attention of a 512-row prompt
// pass over a float32 cache (transformers' numerics) with CUDA events
// around b.N back-to-back launches, at Qwen2.5-Coder-1.5B and -0.5B head
// shapes over random values: attn_f32_rows (all keys a block, and key
// ranges of 256 positions merged by attn_f32_merge) and attn_mma (blocks
// of 64 and 32 rows).
func BenchmarkAttentionF32(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(7, 8))
	const ctx = 512
	for _, sh := range attnBenchShapes {
		kc, vc, q, out, scores, a := attnBenchData(bufs, r, sh, ctx, false)
		a.pass = ctx
		prompt := make([]Row, ctx)
		for p := range prompt {
			prompt[p] = Row{Pos: p}
		}
		info, passp := bufs.ints(rowInfo(prompt...)), bufs.ints([]int32{ctx})
		for _, v := range []struct {
			name           string
			mmaRows, split int // mmaRows 0: attn_f32_rows
		}{{"attn_f32_rows", 0, 0}, {"attn_f32_rows_split256", 0, 256}, {"attn_mma64", 64, 0}, {"attn_mma32", 32, 0}} {
			b.Run(sh.name+"/pp512/"+v.name, func(b *testing.B) {
				defer SetAttnMMA(v.mmaRows > 0, v.mmaRows)()
				defer func(s int) { attnF32Split = s }(attnF32Split)
				attnF32Split = v.split
				us := launchTime(b, d, func() error { return d.attention(q, kc, vc, out, scores, info, passp, a, ctx) })
				b.ReportMetric(us, "us/launch")
			})
		}
	}
}
