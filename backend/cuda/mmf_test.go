package cuda

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"unsafe"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

func init() {
	// APR_MMF_OFF=1 runs the benchmarks of a test binary with the _r16
	// kernels for float weights, for before/after figures in one run;
	// APR_MMF_MIN_BLOCKS sets mmfMinBlocks, to time each tile.
	if os.Getenv("APR_MMF_OFF") == "1" {
		mmfDisabled = true
	}
	if n, err := strconv.Atoi(os.Getenv("APR_MMF_MIN_BLOCKS")); err == nil {
		mmfMinBlocks = n
	}
}

// mmfTypes are the weight types of the mmf kernels.
var mmfTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16}

// TestMMFKernelChoice checks which products the mmf kernels take: float
// weights with 16 or more activation rows, rows a multiple of 32 and
// 16-byte aligned operands; 1-15 rows keep the _r1/_r16 kernels.
func TestMMFKernelChoice(t *testing.T) {
	const base = devptr(1 << 20)
	bf16 := &matrix{dt: tensor.BF16, rows: 1536, cols: 1536, rowBytes: 3072, ptr: base}
	for _, tc := range []struct {
		name      string
		w         *matrix
		act       devptr
		stride, m int
		want      string
		bn        int
	}{
		{"one row", bf16, base, 6144, 1, "", 0},
		{"15 rows", bf16, base, 6144, 15, "", 0},
		{"16 rows", bf16, base, 6144, 16, "mmf_bf16_n32", 32},
		{"512 rows, few blocks", bf16, base, 6144, 512, "mmf_bf16_n32", 32},
		{"512 rows, many blocks", &matrix{dt: tensor.BF16, rows: 17920, cols: 1536, rowBytes: 3072, ptr: base}, base, 6144, 512, "mmf_bf16_n64", 64},
		{"f16", &matrix{dt: tensor.F16, rows: 64, cols: 128, rowBytes: 256, ptr: base}, base, 512, 17, "mmf_f16_n32", 32},
		{"f32", &matrix{dt: tensor.F32, rows: 64, cols: 128, rowBytes: 512, ptr: base}, base, 512, 779, "mmf_f32_n32", 32},
		{"quantized", &matrix{dt: tensor.Q8_0, rows: 64, cols: 128, rowBytes: 136, ptr: base}, base, 136, 512, "", 0},
		{"cols not a multiple of 32", &matrix{dt: tensor.BF16, rows: 64, cols: 80, rowBytes: 160, ptr: base}, base, 320, 512, "", 0},
		{"unaligned activation", bf16, base + 4, 6144, 512, "", 0},
		{"unaligned activation rows", bf16, base, 6148, 512, "", 0},
		{"unaligned weights", &matrix{dt: tensor.BF16, rows: 64, cols: 128, rowBytes: 256, ptr: base + 8}, base, 512, 512, "", 0},
	} {
		got, bn := mmfKernel(tc.w, tc.act, tc.stride, tc.m)
		if got != tc.want || bn != tc.bn {
			t.Errorf("%s: mmfKernel = %q, %d; want %q, %d", tc.name, got, bn, tc.want, tc.bn)
		}
	}
}

// TestMMFNamesInPTX checks that the embedded PTX has every mmf kernel (it
// fails until kernels/kernels.ptx is regenerated from mmf.cuh).
func TestMMFNamesInPTX(t *testing.T) {
	for _, dt := range mmfTypes {
		for _, tile := range []string{"_n64", "_n32"} {
			if n := kernelName("mmf_", dt) + tile; !bytes.Contains(embeddedPTX, []byte(".entry "+n+"(")) {
				t.Errorf("kernel %s is not in kernels/kernels.ptx", n)
			}
		}
	}
}

// mmfTol bounds |GPU - quant.VecDot| of an output as a share of its
// scale sqrt(sum_k (w_k x_k)^2), which the rounding errors of random terms
// grow with (in units of 2^-24, the float32 unit roundoff): x's TF32 parts
// carry 22 of its 24 bits, 2^-22 a product (3 x 2^-22 for F32 weights,
// whose own split and the dropped lo x lo product add two more), 48 with
// margin; a float32 sum of cols random terms rounds cols partial sums of
// typical size sqrt(k) terms, sqrt(cols/2) of the scale in all, 8
// sqrt(cols) for both sums with margin; and the tensor cores truncate, an
// error of one sign over the 32 mma steps of a 128-column chunk (partial
// sums ~ sqrt(128) terms: up to ~32 x 11 / 2 units a chunk, independent
// between chunks, so ~200 x sqrt(cols/128) in all, ~18 of the scale), 128
// with margin. A product of x rounded to TF32 alone (plain TF32, no lo
// part) is off by ~2^-12 of the scale, over the limit for every shape
// tested, which checkMMFTolDiscriminates shows on the CPU.
func mmfTol(cols int) float64 {
	return 0x1p-24 * (48 + 8*math.Sqrt(float64(cols)) + 128)
}

// tf32Round rounds x to TF32 as cvt.rna does (ties away from zero).
func tf32Round(x float32) float32 {
	b := math.Float32bits(x)
	return math.Float32frombits((b + 0x1000) &^ 0x1fff)
}

// mmfCase is one product of TestMMF: weights (rows x cols of dt),
// activation rows (m x cols) and their references, computed on the CPU.
type mmfCase struct {
	dt                 tensor.DType
	rows, cols, m      int
	wq                 []byte
	x                  []float32
	want, scale, plain []float64 // quant.VecDot, sqrt(sum (w x)^2) and |exact - TF32-only product| of each output
}

func newMMFCase(r *rand.Rand, dt tensor.DType, rows, cols, m int) (*mmfCase, error) {
	rb, err := dt.RowBytes(cols)
	if err != nil {
		return nil, err
	}
	c := &mmfCase{dt: dt, rows: rows, cols: cols, m: m, wq: make([]byte, rows*rb), x: randn(r, m*cols, 1)}
	if err := quant.Quantize(dt, randn(r, rows*cols, 1), c.wq); err != nil {
		return nil, err
	}
	return c, c.refs()
}

// refs computes c's references for its weights and activation rows.
func (c *mmfCase) refs() error {
	dt, rows, cols, m := c.dt, c.rows, c.cols, c.m
	rb, err := dt.RowBytes(cols)
	if err != nil {
		return err
	}
	wf := make([]float32, rows*cols)
	if err := quant.Dequantize(dt, c.wq, wf); err != nil {
		return err
	}
	xb := unsafe.Slice((*byte)(unsafe.Pointer(&c.x[0])), 4*len(c.x))
	n := rows * m
	c.want, c.scale, c.plain = make([]float64, n), make([]float64, n), make([]float64, n)
	for j := range m {
		xr := c.x[j*cols : (j+1)*cols]
		for i := range rows {
			wr := wf[i*cols : (i+1)*cols]
			exact, plain, sq := 0.0, 0.0, 0.0
			for k, xv := range xr {
				w := float64(wr[k])
				exact += w * float64(xv)
				plain += float64(tf32Round(wr[k])) * float64(tf32Round(xv))
				sq += (w * float64(xv)) * (w * float64(xv))
			}
			o := j*rows + i
			c.want[o] = float64(quant.VecDot(dt, c.wq[i*rb:(i+1)*rb], xb[4*j*cols:4*(j+1)*cols], cols))
			c.scale[o], c.plain[o] = math.Sqrt(sq), math.Abs(exact-plain)
		}
	}
	return nil
}

// mmfShapes are TestMMF's products: pass sizes 16, 17, 64, 65, 512 and 779
// activation rows (partial tiles of 32 and 64 rows, several block rows),
// 150 weight rows (the last tile of 64 partial), rows of 160 columns (five
// 32-column steps: both shared-memory stages, the accumulators added after
// four steps and after the last), and one long row (4864, the 0.5B model's
// ffn_down).
var mmfShapes = []struct{ rows, cols, m int }{
	{150, 160, 16}, {150, 160, 17}, {150, 160, 64}, {150, 160, 65}, {150, 160, 512}, {150, 160, 779},
	{77, 4864, 65},
}

// checkMMFTolDiscriminates fails unless a plain TF32 product (x not split)
// would break mmfTol in c: the test could tell the 2xTF32 kernels from it.
func checkMMFTolDiscriminates(t *testing.T, c *mmfCase) {
	t.Helper()
	worst := 0.0
	for o := range c.plain {
		worst = max(worst, c.plain[o]/c.scale[o])
	}
	if worst <= mmfTol(c.cols) {
		t.Fatalf("%v %dx%d: a plain TF32 product is %.3g off, within the tolerance %.3g", c.dt, c.rows, c.cols, worst, mmfTol(c.cols))
	}
	t.Logf("%v %dx%d: a plain TF32 product is %.3g off, %.1fx the tolerance", c.dt, c.rows, c.cols, worst, worst/mmfTol(c.cols))
}

// TestMMFTolerance runs checkMMFTolDiscriminates without a GPU.
func TestMMFTolerance(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, dt := range mmfTypes {
		c, err := newMMFCase(r, dt, 64, 4864, 4)
		if err != nil {
			t.Fatal(err)
		}
		checkMMFTolDiscriminates(t, c)
	}
}

// TestMMF compares the mmf kernels (both tiles, accumulating with a bias
// and overwriting without) with quant.VecDot on the same weights and
// float32 activations, within mmfTol of each output's scale.
func TestMMF(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(7, 8))
	defer func(n int) { mmfMinBlocks = n }(mmfMinBlocks)
	for _, dt := range mmfTypes {
		for _, s := range mmfShapes {
			c, err := newMMFCase(r, dt, s.rows, s.cols, s.m)
			if err != nil {
				t.Fatal(err)
			}
			checkMMFTolDiscriminates(t, c)
			rb, _ := dt.RowBytes(s.cols)
			w := &matrix{name: "w", dt: dt, rows: s.rows, cols: s.cols, rowBytes: rb, ptr: b.bytes(c.wq)}
			act := b.floats(c.x)
			bias, y0 := randn(r, s.rows, 1), randn(r, s.rows*s.m, 1)
			for _, tile := range []struct {
				minBlocks, bn int
			}{{0, 64}, {1 << 30, 32}} {
				mmfMinBlocks = tile.minBlocks
				what := fmt.Sprintf("%v %dx%d by %d rows", dt, s.rows, s.cols, s.m)
				if name, bn := mmfKernel(w, act, 4*s.cols, s.m); bn != tile.bn {
					t.Fatalf("%s: mmfKernel picked %s, want the tile of %d activation rows", what, name, tile.bn)
				}
				what += fmt.Sprintf(", tiles of %d", tile.bn)
				y := b.floats(y0)
				if err := d.matmul(w, act, 4*s.cols, y, s.rows, b.floats(bias), true, s.m); err != nil {
					t.Fatal(err)
				}
				got := b.readFloats(y, s.rows*s.m)
				for o := range got { // back to the product alone
					got[o] = float32(float64(got[o]) - float64(y0[o]) - float64(bias[o%s.rows]))
				}
				// Adding y0 and the bias rounds once more: up to 2^-24 of
				// |y0 + bias + product|, in units of the output's scale.
				c.check(t, what+" (accumulate, bias)", got, func(o int) float64 {
					return 0x1p-23 * (math.Abs(float64(y0[o])) + math.Abs(float64(bias[o%s.rows])) + math.Abs(c.want[o])) / c.scale[o]
				})
				y = b.poisoned(4 * s.rows * s.m)
				if err := d.matmul(w, act, 4*s.cols, y, s.rows, 0, false, s.m); err != nil {
					t.Fatal(err)
				}
				c.check(t, what, b.readFloats(y, s.rows*s.m), func(int) float64 { return 0 })
			}
		}
	}
}

// check fails when an output is off by more than mmfTol + extra(o) of its
// scale.
func (c *mmfCase) check(t *testing.T, what string, got []float32, extra func(o int) float64) {
	t.Helper()
	c.checkTol(t, what, got, mmfTol(c.cols), extra)
}

// checkTol fails when an output is off by more than tol + extra(o) of its
// scale.
func (c *mmfCase) checkTol(t *testing.T, what string, got []float32, tol float64, extra func(o int) float64) {
	t.Helper()
	worst := 0.0
	for o := range c.want {
		e := math.Abs(float64(got[o])-c.want[o]) / c.scale[o]
		if math.IsNaN(e) || e > tol+extra(o) {
			t.Fatalf("%s: output %d (weight row %d, activation row %d): got %v, want %v (%.3g of the scale %.3g, limit %.3g)",
				what, o, o%c.rows, o/c.rows, got[o], c.want[o], e, c.scale[o], tol+extra(o))
		}
		worst = max(worst, e)
	}
	t.Logf("%s: worst %.3g of the scale (limit %.3g)", what, worst, tol)
}
