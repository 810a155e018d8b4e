package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkAttentionSplit times one decode row's split attention (the
// split kernel and its fin kernel, back to back, CUDA events around b.N
// launches) at Qwen2.5-Coder-1.5B and -0.5B head shapes over a cache of
// 16,640 positions (BenchmarkDecodeLong's context) with a 64-row scores
// scratch (a model's), at positions 1,100, 4,095 and 16,383: over an F16
// cache with ggml's flash attention (GGUF; its threshold is 1,024 keys)
// and over a float32 cache (SafeTensors). The decode graph's launch: the
// pass size is read on the device.
func BenchmarkAttentionSplit(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(9, 10))
	const ctx, scoreRows = 16640, 64
	passp := bufs.ints([]int32{1})
	for _, sh := range attnBenchShapes {
		for _, f16 := range []bool{true, false} {
			kvDim := sh.kvHeads * sh.dim
			qStride := sh.heads*sh.dim + 2*kvDim
			elem := kvElem(f16)
			kc, vc := benchCache(bufs, r, ctx*kvDim, f16), benchCache(bufs, r, ctx*kvDim, f16)
			q := bufs.floats(randn(r, qStride, 2))
			out, scores := bufs.poisoned(4*sh.heads*sh.dim), bufs.poisoned(4*scoreRows*sh.heads*ctx)
			a := attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx,
				scale: float32(1 / math.Sqrt(float64(sh.dim))), f16: f16, fa: f16, qStride: qStride,
				slotBytes: ctx * kvDim * elem, long: true, scoreRows: scoreRows}
			cacheName := "f16"
			if !f16 {
				cacheName = "f32"
			}
			for _, pos := range []int{1100, 4095, 16383} {
				info := bufs.ints(rowInfo(Row{Pos: pos}))
				b.Run(fmt.Sprintf("%s/%s/pos%d", sh.name, cacheName, pos), func(b *testing.B) {
					us := launchTime(b, d, func() error {
						ok, err := d.attnSplit(q, kc, vc, out, scores, info, passp, a, 1)
						if err == nil && !ok {
							err = fmt.Errorf("the split did not run")
						}
						return err
					})
					b.ReportMetric(us, "us/launch")
				})
			}
		}
	}
}
