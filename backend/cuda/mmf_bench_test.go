package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// BenchmarkMMF times the BF16 products of a 512-row pass (pp512) of
// Qwen2.5-Coder-1.5B with CUDA events around b.N launches: the _r16
// kernels and the mmf kernels with each tile.
func BenchmarkMMF(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(5, 6))
	const m = 512
	dt := tensor.BF16
	for _, s := range []struct {
		name       string
		rows, cols int
	}{
		{"qkv", 2048, 1536}, {"o", 1536, 1536}, {"gate+up", 17920, 1536}, {"down", 1536, 8960},
	} {
		rb, _ := dt.RowBytes(s.cols)
		wq := make([]byte, s.rows*rb)
		if err := quant.Quantize(dt, randn(r, s.rows*s.cols, 0.02), wq); err != nil {
			b.Fatal(err)
		}
		w := &matrix{name: s.name, dt: dt, rows: s.rows, cols: s.cols, rowBytes: rb, ptr: bufs.bytes(wq)}
		act, y := bufs.floats(randn(r, m*s.cols, 1)), bufs.poisoned(4*s.rows*m)
		for _, v := range []struct {
			name      string
			off       bool
			minBlocks int
		}{
			{"r16", true, 0}, {"n64", false, 0}, {"n32", false, 1 << 30},
		} {
			b.Run(fmt.Sprintf("%s-%dx%d/%s", s.name, s.rows, s.cols, v.name), func(b *testing.B) {
				defer func(off bool, n int) { mmfDisabled, mmfMinBlocks = off, n }(mmfDisabled, mmfMinBlocks)
				mmfDisabled, mmfMinBlocks = v.off, v.minBlocks
				us := launchTime(b, d, func() error { return d.matmul(w, act, 4*s.cols, y, s.rows, 0, false, m) })
				b.ReportMetric(us, "us/launch")
				b.ReportMetric(2*float64(s.rows)*float64(s.cols)*m/us/1e6, "TFLOP/s")
			})
		}
	}
}
