package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// productShape is a matrix product of a model's pass.
type productShape struct {
	name       string
	dt         tensor.DType
	rows, cols int
}

// shapes15B are the products of a Qwen2.5-Coder-1.5B Q4_K_M pass.
var shapes15B = []productShape{
	{"q+k", tensor.Q4_K, 1792, 1536},
	{"v", tensor.Q6_K, 256, 1536},
	{"o", tensor.Q4_K, 1536, 1536},
	{"gate+up", tensor.Q4_K, 17920, 1536},
	{"down", tensor.Q6_K, 1536, 8960},
	{"output", tensor.Q6_K, 151936, 1536},
}

// shapes05B are the one-row products of the Qwen2.5-Coder-0.5B Q4_K_M
// decode step (the synthetic model's types: 896-column rows take
// llama-quantize's fallbacks, Q5_0 and Q8_0 for attn_v and the LM head).
var shapes05B = []productShape{
	{"0.5B-q+k", tensor.Q5_0, 1024, 896},
	{"0.5B-v", tensor.Q8_0, 128, 896},
	{"0.5B-o", tensor.Q5_0, 896, 896},
	{"0.5B-gate+up", tensor.Q5_0, 9728, 896},
	{"0.5B-down", tensor.Q6_K, 896, 4864},
	{"0.5B-output", tensor.Q8_0, 151936, 896},
}

// repeatedWeights uploads a matrix of shape s made of one random quantized
// block of 64 rows repeated, returning it and its bytes.
func repeatedWeights(b *testing.B, bufs *buffers, r *rand.Rand, s productShape) (*matrix, []byte) {
	rb, _ := s.dt.RowBytes(s.cols)
	block := make([]byte, 64*rb)
	if err := quant.Quantize(s.dt, randn(r, 64*s.cols, 1), block); err != nil {
		b.Fatal(err)
	}
	wq := make([]byte, s.rows*rb)
	for i := 0; i < len(wq); i += len(block) {
		copy(wq[i:], block)
	}
	return &matrix{name: s.name, dt: s.dt, rows: s.rows, cols: s.cols, rowBytes: rb, ptr: bufs.bytes(wq)}, wq
}

// BenchmarkPassProducts times the matrix products of a pass of m rows of
// the Qwen2.5-Coder-1.5B Q4_K_M and Q8_0 shapes (a quantized block of 64
// rows repeated to the full shape) with the _r16, the split (K-quants),
// the mmq and, for Q8_0, the K-split mmq32 kernels ("ks" in 32-row tiles,
// "ks16" in 16; "mmq" is then the 64 x 64 tiles; mmq from 8 rows, ks from
// 2), CUDA events around b.N
// back-to-back launches: where useMMQ should switch.
func BenchmarkPassProducts(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(7, 8))
	const maxM = 64
	for _, s := range append(shapes15B[:len(shapes15B):len(shapes15B)], shapesQ8[:4]...) {
		_, staged := mmq32KSNames[s.dt]
		w, wq := repeatedWeights(b, bufs, r, s)
		vt := actType(s.dt)
		ab, _ := vt.RowBytes(s.cols)
		act := make([]byte, maxM*ab)
		for c := 0; c < maxM; c++ {
			if err := quant.QuantizeActivation(vt, randn(r, s.cols, 1), act[c*ab:(c+1)*ab]); err != nil {
				b.Fatal(err)
			}
		}
		a, y := bufs.bytes(act), bufs.poisoned(4*s.rows*maxM)
		for _, m := range []int{2, 4, 8, 16, 24, 32, 48, 64} {
			for _, k := range []struct {
				name              string
				allRows, minBlock int
				split             bool
				ks, ksRows        int // mmq32KSMode, mmq32KSRows
			}{{"r16", math.MaxInt32, math.MaxInt32, false, 0, 32}, {"split", math.MaxInt32, math.MaxInt32, true, 0, 32},
				{"mmq", 1, 0, false, -1, 32}, {"ks", 1, 0, false, 1, 32}, {"ks16", 1, 0, false, 1, 16}} {
				if k.name == "mmq" && m < 8 || k.name == "split" && !splitType(s.dt) || k.ks > 0 && !staged {
					continue
				}
				b.Run(fmt.Sprintf("%s-%v-%dx%d/m=%d/%s", s.name, s.dt, s.rows, s.cols, m, k.name), func(b *testing.B) {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					d.drv.cuCtxSetCurrent(d.ctx)
					if err := d.initTerms(); err != nil {
						b.Fatal(err)
					}
					defer func(on bool, ks, few, ksRows int) {
						termsEnabled, mmq32KSMode, mmqFewRows, mmq32KSRows = on, ks, few, ksRows
					}(termsEnabled, mmq32KSMode, mmqFewRows, mmq32KSRows)
					// mmq and the K-split take every shape from 2 rows (mmqMinBlocks 0); _r16
					// and split keep mmqMinBlocks at its maximum, so mmq takes none.
					termsEnabled, mmq32KSMode, mmq32KSRows, mmqFewRows = k.split, k.ks, k.ksRows, 2
					defer SetPassPolicy(PassPolicy{k.allRows, k.minBlock, k.allRows, k.allRows, passGraphRows})()
					benchMatmul(b, d, w, a, ab, y, s.rows, m, len(wq))
				})
			}
		}
	}
}

// BenchmarkLogitsDownload times the copy of 32 rows of a 151936-token
// vocabulary's logits (19 MB) from the device into pageable Go memory and
// into page-locked memory.
func BenchmarkLogitsDownload(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	const n = 32 * 151936
	src := bufs.poisoned(4 * n)
	err := d.hostFuncs()
	var p unsafe.Pointer
	if err == nil {
		err = d.drv.check("cuMemAllocHost", hostMem.alloc(&p, 4*n))
	}
	if err != nil {
		b.Fatal(err)
	}
	defer hostMem.free(p)
	for _, dst := range []struct {
		name string
		v    []float32
	}{{"pageable", make([]float32, n)}, {"pinned", unsafe.Slice((*float32)(p), n)}} {
		b.Run(dst.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			d.drv.cuCtxSetCurrent(d.ctx)
			b.SetBytes(4 * n)
			for i := 0; i < b.N; i++ {
				if err := d.downloadF32(dst.v, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
