package cuda

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// blasTypes are the weight types that cuBLAS multiplies.
var blasTypes = []tensor.DType{tensor.BF16, tensor.F16}

// blasTol bounds |GPU - quant.VecDot| of a cuBLAS product's output as a
// share of its scale sqrt(sum_k (w_k x_k)^2): the float32 sums' and the
// tensor cores' part as for the mmf kernels (mmfTol), plus the split
// activation's. BF16: hi + lo misses at most 2^-9 of x - hi, itself at
// most 2^-9 of x, so each term is off by up to 2^-18 of itself, random in
// sign: ~2^-18 of the scale, 2^-16 with margin. F16: 11 bits a part, each
// term off by ~2^-24 of itself but for the subnormal hi parts of values
// below 2^-14 (lo, stored x 2^11, keeps them): 2^-20. One rounding of x
// (no lo part) is off by ~2^-9 (BF16) or ~2^-12 (F16) of the scale, over
// the limit for every shape tested: checkBLASTolDiscriminates.
func blasTol(dt tensor.DType, cols int) float64 {
	if dt == tensor.F16 {
		return mmfTol(cols) + 0x1p-20
	}
	return mmfTol(cols) + 0x1p-16
}

// roundTo rounds x to dt (BF16 or F16) to nearest even, as blas_split does.
func roundTo(dt tensor.DType, x float32) float32 {
	if dt == tensor.F16 {
		return tensor.F16ToF32(tensor.F32ToF16(x))
	}
	return tensor.BF16ToF32(tensor.F32ToBF16(x))
}

// checkBLASTolDiscriminates fails unless a product of the activation
// rounded once to c.dt (one GEMM, no lo part) would break blasTol in c.
func checkBLASTolDiscriminates(t *testing.T, c *mmfCase) {
	t.Helper()
	wf := make([]float32, c.rows*c.cols)
	if err := quant.Dequantize(c.dt, c.wq, wf); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for j := range c.m {
		xr := c.x[j*c.cols : (j+1)*c.cols]
		for i := range c.rows {
			wr := wf[i*c.cols : (i+1)*c.cols]
			e := 0.0
			for k, xv := range xr {
				e += float64(wr[k]) * (float64(xv) - float64(roundTo(c.dt, xv)))
			}
			worst = max(worst, math.Abs(e)/c.scale[j*c.rows+i])
		}
	}
	if tol := blasTol(c.dt, c.cols); worst <= tol {
		t.Fatalf("%v %dx%d: one rounding of the activation is %.3g off, within the tolerance %.3g", c.dt, c.rows, c.cols, worst, tol)
	}
}

// TestBLASTolerance runs checkBLASTolDiscriminates without a GPU.
func TestBLASTolerance(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, dt := range blasTypes {
		for _, cols := range []int{160, 4864} {
			c, err := newMMFCase(r, dt, 64, cols, 4)
			if err != nil {
				t.Fatal(err)
			}
			checkBLASTolDiscriminates(t, c)
		}
	}
}

// TestBLASChoice checks which products go to cuBLAS: BF16 and F16 weights
// by blasMinRows rows or more, rows a multiple of 8, 16-byte aligned
// operands and split scratch for them; none without cuBLAS.
func TestBLASChoice(t *testing.T) {
	const base = devptr(1 << 20)
	bf16 := &matrix{dt: tensor.BF16, rows: 1536, cols: 1536, rowBytes: 3072, ptr: base}
	on := &Device{blas: &blas{splitBytes: 4 * 512 * 8960}}
	for _, tc := range []struct {
		name      string
		d         *Device
		w         *matrix
		act       devptr
		stride, m int
		want      bool
	}{
		{"512 rows", on, bf16, base, 6144, 512, true},
		{"blasMinRows", on, bf16, base, 6144, blasMinRows, true},
		{"a captured pass", on, bf16, base, 6144, passGraphRows, true},
		{"fewer than blasMinRows", on, bf16, base, 6144, blasMinRows - 1, false},
		{"f16", on, &matrix{dt: tensor.F16, rows: 64, cols: 128, rowBytes: 256, ptr: base}, base, 512, 779, true},
		{"f32 (mmf)", on, &matrix{dt: tensor.F32, rows: 64, cols: 128, rowBytes: 512, ptr: base}, base, 512, 512, false},
		{"quantized", on, &matrix{dt: tensor.Q8_0, rows: 64, cols: 128, rowBytes: 136, ptr: base}, base, 136, 512, false},
		{"cols not a multiple of 8", on, &matrix{dt: tensor.BF16, rows: 64, cols: 84, rowBytes: 168, ptr: base}, base, 336, 512, false},
		{"unaligned activation", on, bf16, base + 4, 6144, 512, false},
		{"unaligned activation rows", on, bf16, base, 6148, 512, false},
		{"more than the scratch", on, &matrix{dt: tensor.BF16, rows: 64, cols: 8960, rowBytes: 17920, ptr: base}, base, 35840, 513, false},
		{"no cuBLAS", &Device{}, bf16, base, 6144, 512, false},
	} {
		if got := tc.d.useBLAS(tc.w, tc.act, tc.stride, tc.m); got != tc.want {
			t.Errorf("%s: useBLAS = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestOpenBLASErrors checks, without a GPU, that a missing library, one
// without cuBLAS's entry points and APR_CUBLAS_OFF=1 each give an error
// (the caller then runs the mmf kernels), never a panic.
func TestOpenBLASErrors(t *testing.T) {
	for _, tc := range []struct {
		name, off string
		libs      []string
		want      string
	}{
		{"missing", "", []string{"/nonexistent/libcublas.so.13", "libcublas.so.0"}, "no cuBLAS library"},
		{"not cuBLAS", "", []string{"libc.so.6"}, "cuBLAS lacks cublasCreate_v2"},
		{"turned off", "1", blasLibNames, blasOffEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(blasOffEnv, tc.off)
			b, err := openBLAS(tc.libs)
			if err == nil || b != nil {
				t.Fatalf("openBLAS(%q) = %v, %v; want an error", tc.libs, b, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("openBLAS(%q): %v; want it to say %q", tc.libs, err, tc.want)
			}
		})
	}
}

// testBLAS returns the device with cuBLAS ready for split activations of
// n values, skipping the test where cuBLAS is not loaded.
func testBLAS(t testing.TB, n int) *Device {
	d := testDevice(t)
	if err := d.initBLAS(n, n); err != nil {
		t.Fatal(err)
	}
	if d.blas == nil {
		t.Skipf("skipping cuBLAS test: %s", d.blasReason)
	}
	return d
}

// TestBLASMatmul compares matmul's cuBLAS products (BF16 and F16 weights,
// accumulating with a bias and overwriting without, rows of 160 and 4864
// columns, passes of 65, 512 and 779 rows) with quant.VecDot on the same
// weights and float32 activations, within blasTol of each output's scale.
func TestBLASMatmul(t *testing.T) {
	d := testBLAS(t, 779*4864)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(33, 34))
	defer func(t, c int) { blasStackTiles, blasStackMaxCols = t, c }(blasStackTiles, blasStackMaxCols)
	for _, stack := range []bool{false, true} {
		// Every product stacked (one GEMM of hi and lo rows, blas_sum), or
		// none (two GEMMs).
		blasStackTiles, blasStackMaxCols = 0, 0
		if stack {
			blasStackTiles, blasStackMaxCols = 1<<30, 1<<30
		}
		testBLASMatmul(t, d, b, r, stack)
	}
}

// testBLASMatmul is TestBLASMatmul's products with the stacking chosen.
func testBLASMatmul(t *testing.T, d *Device, b *buffers, r *rand.Rand, stack bool) {
	for _, dt := range blasTypes {
		for _, s := range []struct{ rows, cols, m int }{{150, 160, 65}, {150, 160, 512}, {77, 4864, 779}, {300, 4864, 65}, {300, 4864, 16}, {150, 160, 32}} {
			c, err := newMMFCase(r, dt, s.rows, s.cols, s.m)
			if err != nil {
				t.Fatal(err)
			}
			checkBLASTolDiscriminates(t, c)
			rb, _ := dt.RowBytes(s.cols)
			w := &matrix{name: "w", dt: dt, rows: s.rows, cols: s.cols, rowBytes: rb, ptr: b.bytes(c.wq)}
			act := b.floats(c.x)
			if !d.useBLAS(w, act, 4*s.cols, s.m) {
				t.Fatalf("%v %dx%d by %d rows: not a cuBLAS product", dt, s.rows, s.cols, s.m)
			}
			// y rows 8 floats wider than the product (as q/k/v's rows in
			// the fused buffer): ldc != rows.
			ys := s.rows + 8
			bias, y0 := randn(r, s.rows, 1), randn(r, ys*s.m, 1)
			tol := blasTol(dt, s.cols)
			what := fmt.Sprintf("%v %dx%d by %d rows (stacked %v)", dt, s.rows, s.cols, s.m, stack)
			if stack && 8*s.m*s.rows > d.blas.stackBytes {
				t.Fatalf("%s: the stacked product's scratch is too small", what)
			}
			y := b.floats(y0)
			if err := d.matmul(w, act, 4*s.cols, y, ys, b.floats(bias), true, s.m); err != nil {
				t.Fatal(err)
			}
			all := b.readFloats(y, ys*s.m)
			got := make([]float32, s.rows*s.m)
			for o := range got { // back to the product alone
				i, j := o%s.rows, o/s.rows
				got[o] = float32(float64(all[j*ys+i]) - float64(y0[j*ys+i]) - float64(bias[i]))
			}
			c.checkTol(t, what+" (accumulate, bias)", got, tol, func(o int) float64 {
				i, j := o%s.rows, o/s.rows
				return 0x1p-22 * (math.Abs(float64(y0[j*ys+i])) + math.Abs(float64(bias[i])) + math.Abs(c.want[o])) / c.scale[o]
			})
			y = b.poisoned(4 * s.rows * s.m)
			if err := d.matmul(w, act, 4*s.cols, y, s.rows, 0, false, s.m); err != nil {
				t.Fatal(err)
			}
			c.checkTol(t, what, b.readFloats(y, s.rows*s.m), tol, func(int) float64 { return 0 })
		}
	}
}

// TestBLASSiluSplit checks siluQuant's fused path before a cuBLAS down
// product (blas_silu_split_*: the outputs and their split in one kernel,
// used by the next product in place of its own split): the outputs as
// cpu.SiLUMul's within 1e-6 (as TestPointwise's silu_quant), and the
// product of those outputs, taking the split made ahead, against
// quant.VecDot within blasTol; a product of other rows after it splits
// its own activation.
func TestBLASSiluSplit(t *testing.T) {
	const n, rows = 4864, 96
	d := testBLAS(t, 512*n)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(35, 36))
	for _, dt := range blasTypes {
		for _, m := range []int{blasMinRows, 512} {
			what := fmt.Sprintf("%v, %d rows", dt, m)
			gu := randn(r, m*2*n, 3)
			want := make([]float32, 0, m*n)
			for row := range m {
				g := append([]float32(nil), gu[row*2*n:row*2*n+n]...)
				cpu.SiLUMul(g, gu[row*2*n+n:(row+1)*2*n])
				want = append(want, g...)
			}
			c, err := newMMFCase(r, dt, rows, n, m)
			if err != nil {
				t.Fatal(err)
			}
			rb, _ := dt.RowBytes(n)
			w := &matrix{name: "down", dt: dt, rows: rows, cols: n, rowBytes: rb, ptr: b.bytes(c.wq)}
			// A product of w sets the type that the split is made for.
			if err := d.matmul(w, b.floats(c.x), 4*n, b.poisoned(4*rows*m), rows, 0, false, m); err != nil {
				t.Fatal(err)
			}
			out := b.poisoned(4 * m * n)
			if err := d.siluQuant(b.floats(gu), out, n, m, false, 0, 0); err != nil {
				t.Fatal(err)
			}
			if d.blas.pre.src != out {
				t.Fatalf("%s: siluQuant made no split ahead of the product", what)
			}
			got := b.readFloats(out, m*n)
			compare(t, "silu "+what, got, want, 1e-6)
			y := b.poisoned(4 * rows * m)
			if err := d.matmul(w, out, 4*n, y, rows, 0, false, m); err != nil {
				t.Fatal(err)
			}
			if d.blas.pre != (blasPre{}) {
				t.Fatalf("%s: the split made ahead is still marked after its product", what)
			}
			c.x = got
			if err := c.refs(); err != nil {
				t.Fatal(err)
			}
			c.checkTol(t, "down product "+what, b.readFloats(y, rows*m), blasTol(dt, n), func(int) float64 { return 0 })
		}
	}
}

// TestBLASNormSplit checks rmsNormSplit (RMSNorm writing its outputs' hi
// and lo parts for the next cuBLAS product) against the CPU's RMSNorm,
// and the product that reads the split against quant.VecDot on the CPU's
// normalised rows, within blasTol.
func TestBLASNormSplit(t *testing.T) {
	const n, rows = 1536, 160
	d := testBLAS(t, 512*n)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(37, 38))
	be := cpu.New(1)
	defer be.Close()
	for _, dt := range blasTypes {
		for _, m := range []int{blasMinRows, 512} {
			what := fmt.Sprintf("%v, %d rows", dt, m)
			x, nw := randn(r, m*n, 3), randn(r, n, 1)
			want := make([]float32, m*n)
			be.RMSNorm(want, x, nw, m, 1e-6)
			out := b.poisoned(4 * m * n)
			ran, err := d.rmsNormSplit(b.floats(x), b.floats(nw), out, n, m, 1e-6, false, 0, dt)
			if err != nil {
				t.Fatal(err)
			}
			if !ran || d.blas.pre.src != out {
				t.Fatalf("%s: rmsNormSplit made no split", what)
			}
			got := b.readFloats(out, m*n)
			compare(t, "rmsnorm "+what, got, want, 1e-6)
			c, err := newMMFCase(r, dt, rows, n, m)
			if err != nil {
				t.Fatal(err)
			}
			rb, _ := dt.RowBytes(n)
			w := &matrix{name: "qkv", dt: dt, rows: rows, cols: n, rowBytes: rb, ptr: b.bytes(c.wq)}
			y := b.poisoned(4 * rows * m)
			if err := d.matmul(w, out, 4*n, y, rows, 0, false, m); err != nil {
				t.Fatal(err)
			}
			c.x = want
			if err := c.refs(); err != nil {
				t.Fatal(err)
			}
			c.checkTol(t, "product of the split "+what, b.readFloats(y, rows*m), blasTol(dt, n), func(int) float64 { return 0 })
		}
	}
	if ran, _ := d.rmsNormSplit(0, 0, 0, n, blasMinRows-1, 1e-6, false, 0, tensor.BF16); ran {
		t.Error("rmsNormSplit ran for a pass too small for cuBLAS")
	}
}

// TestBLASKernelNames checks, without a GPU, that the kernels cublas.go
// names by weight type are entries of the embedded PTX.
func TestBLASKernelNames(t *testing.T) {
	for _, dt := range blasTypes {
		for _, prefix := range []string{"blas_split_", "blas_silu_split_", "rmsnorm_split_"} {
			if n := kernelName(prefix, dt); !bytes.Contains(embeddedPTX, []byte(".entry "+n+"(")) {
				t.Errorf("kernel %s is not in kernels/kernels.ptx", n)
			}
		}
	}
}
