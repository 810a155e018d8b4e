package cuda

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

func init() {
	// APR_MVF_OFF=1 runs a test binary's one-row float products on the _r1
	// kernels (with a PTX that has no mvf kernels, or for before/after
	// figures in one run).
	if os.Getenv("APR_MVF_OFF") == "1" {
		mvfDisabled = true
	}
}

// TestMVFKernelChoice checks which products the mvf kernels take and the
// rows a warp they get, without a GPU.
func TestMVFKernelChoice(t *testing.T) {
	const base = devptr(1 << 20)
	bf16 := func(rows, cols int) *matrix {
		return &matrix{dt: tensor.BF16, rows: rows, cols: cols, rowBytes: 2 * cols, ptr: base}
	}
	for _, tc := range []struct {
		name string
		w    *matrix
		act  devptr
		want string
		rw   int
	}{
		{"1.5B gate+up", bf16(17920, 1536), base, "mvf_bf16", 4},
		{"1.5B LM head", bf16(151936, 1536), base, "mvf_bf16", 4},
		{"4096 rows", bf16(4096, 1536), base, "mvf_bf16", 2},
		{"1.5B down", bf16(1536, 8960), base, "mvf_bf16", 1},
		{"one row", bf16(1, 8), base, "mvf_bf16", 1},
		{"f16", &matrix{dt: tensor.F16, rows: 64, cols: 24, rowBytes: 48, ptr: base}, base, "mvf_f16", 1},
		{"f32 of 4 columns", &matrix{dt: tensor.F32, rows: 64, cols: 4, rowBytes: 16, ptr: base}, base, "mvf_f32", 1},
		{"bf16 cols not a multiple of 8", bf16(64, 12), base, "", 0},
		{"quantized", &matrix{dt: tensor.Q8_0, rows: 64, cols: 128, rowBytes: 136, ptr: base}, base, "", 0},
		{"unaligned activation", bf16(64, 128), base + 4, "", 0},
		{"unaligned weights", &matrix{dt: tensor.BF16, rows: 64, cols: 128, rowBytes: 256, ptr: base + 8}, base, "", 0},
		{"unaligned rows", &matrix{dt: tensor.F32, rows: 64, cols: 6, rowBytes: 24, ptr: base}, base, "", 0},
	} {
		got, rw := mvfKernel(tc.w, tc.act)
		if got != tc.want || rw != tc.rw {
			t.Errorf("%s: mvfKernel = %q, %d; want %q, %d", tc.name, got, rw, tc.want, tc.rw)
		}
	}
}

// TestMVF checks the one-row float products against quant.VecDot (float
// weights, float32 activation) for row lengths that are and are not a
// multiple of a warp's 32 chunks, row counts that are not a multiple of a
// warp's group, each group size, with and without accumulation and bias.
func TestMVF(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(11, 12))
	defer func(w int) { mvfTargetWarps = w }(mvfTargetWarps)
	for _, tc := range []struct{ rows, cols, rw int }{
		{1, 8, 1}, {77, 264, 1}, {77, 264, 2}, {77, 264, 4}, {7, 1000, 4},
		{130, 896, 2}, {33, 2312, 4}, {9, 4864, 1}, {5, 8960, 4},
	} {
		for _, dt := range mmfTypes {
			rows, cols := tc.rows, tc.cols
			mvfTargetWarps = map[int]int{1: 1 << 30, 2: ceilDiv(rows, 2), 4: 1}[tc.rw]
			rb, _ := dt.RowBytes(cols)
			wq := make([]byte, rows*rb)
			if err := quant.Quantize(dt, randn(r, rows*cols, 1), wq); err != nil {
				t.Fatal(err)
			}
			x := randn(r, cols, 1)
			act := make([]byte, 4*cols)
			if err := quant.QuantizeActivation(tensor.F32, x, act); err != nil {
				t.Fatal(err)
			}
			w := &matrix{name: "w", dt: dt, rows: rows, cols: cols, rowBytes: rb, ptr: b.bytes(wq)}
			a := b.bytes(act)
			if name, rw := mvfKernel(w, a); name != kernelName("mvf_", dt) || rw != tc.rw {
				t.Fatalf("%v %dx%d: mvfKernel = %q, %d; want %s, %d", dt, rows, cols, name, rw, kernelName("mvf_", dt), tc.rw)
			}
			bias, y0 := randn(r, rows, 1), randn(r, rows, 1)
			dot := make([]float32, rows)
			want := make([]float32, rows)
			for i := range rows {
				dot[i] = quant.VecDot(dt, wq[i*rb:(i+1)*rb], act, cols)
				want[i] = y0[i] + (dot[i] + bias[i])
			}
			what := fmt.Sprintf("%v mvf of %d x %d, %d rows a warp", dt, rows, cols, tc.rw)
			y := b.floats(y0)
			if err := d.matmul(w, a, 4*cols, y, rows, b.floats(bias), true, 1); err != nil {
				t.Fatal(err)
			}
			compare(t, what+" (accumulate, bias)", b.readFloats(y, rows), want, 1e-5)
			y = b.poisoned(4 * rows)
			if err := d.matmul(w, a, 4*cols, y, rows, 0, false, 1); err != nil {
				t.Fatal(err)
			}
			compare(t, what, b.readFloats(y, rows), dot, 1e-5)
		}
	}
}

// shapes15BF16 are the one-row products of a Qwen2.5-Coder-1.5B BF16
// decode step.
var shapes15BF16 = []productShape{
	{"qkv", tensor.BF16, 2048, 1536},
	{"o", tensor.BF16, 1536, 1536},
	{"gate+up", tensor.BF16, 17920, 1536},
	{"down", tensor.BF16, 1536, 8960},
	{"output", tensor.BF16, 151936, 1536},
}

// BenchmarkMatVecF times the one-row BF16 products of the 1.5B decode step
// (CUDA events around b.N back-to-back launches) on the _r1 kernels and
// on the mvf kernels with the planned group and 1, 2 and 4 rows a warp.
func BenchmarkMatVecF(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range shapes15BF16 {
		w, wq := repeatedWeights(b, bufs, r, s)
		a, y := bufs.floats(randn(r, s.cols, 1)), bufs.poisoned(4*s.rows)
		for _, v := range []struct {
			name   string
			off    bool
			target int
		}{
			{"r1", true, 0}, {"plan", false, mvfTargetWarps}, {"rw1", false, 1 << 30}, {"rw2", false, ceilDiv(s.rows, 2)}, {"rw4", false, 1},
		} {
			b.Run(fmt.Sprintf("%s-%dx%d/%s", s.name, s.rows, s.cols, v.name), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				d.drv.cuCtxSetCurrent(d.ctx)
				defer func(t int, off bool) { mvfTargetWarps, mvfDisabled = t, off }(mvfTargetWarps, mvfDisabled)
				mvfTargetWarps, mvfDisabled = v.target, v.off || mvfDisabled
				benchMatmul(b, d, w, a, 4*s.cols, y, s.rows, 1, len(wq))
			})
		}
	}
}
