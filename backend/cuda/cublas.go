package cuda

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/apr-llm/apr/tensor"
)

// Products of float weights by passes of many rows through cuBLAS, loaded
// at run time with purego as libcuda is (no cgo, no toolkit at build
// time): libcublas.so.13, else .12; without it (or with APR_CUBLAS_OFF=1)
// those products run the mmf kernels, with no error.
//
// cublasGemmEx multiplies 16-bit operands (BF16 weights by BF16
// activations, F16 by F16) on the tensor cores with float32 sums and
// output. The float32 activation goes as two parts, hi = r(x) and lo =
// r(x - hi) (kernels/cublas.cuh's blas_split_*), two GEMMs adding into y:
// 16 significant bits of x for BF16 (the weights are exact), where one
// rounding would keep 8. F32 weights keep the mmf kernels (split in 3
// TF32 products there).

// blasOffEnv turns the cuBLAS products off (the mmf kernels run instead).
const blasOffEnv = "APR_CUBLAS_OFF"

// blasLibNames are the cuBLAS libraries tried in order: by soname on the
// loader's path, then in the CUDA toolkit's usual place.
var blasLibNames = []string{
	"libcublas.so.13", "libcublas.so.12",
	"/usr/local/cuda/lib64/libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.12",
	"/usr/local/cuda/targets/x86_64-linux/lib/libcublas.so.13", "/usr/local/cuda/targets/x86_64-linux/lib/libcublas.so.12",
}

// blasMinRows is the fewest activation rows of a product that cuBLAS
// takes (mmf's least, mmfMinRows: fewer run the one-row kernels). Passes
// of up to passGraphRows rows are captured in CUDA graphs (graphs.go)
// with their GEMMs: cuBLAS launches into a capturing stream, and with its
// workspace set (cublasSetWorkspace) it allocates nothing there. Passes
// of 16-64 rows (many streams' decode steps) ran on the mmf kernels
// before: ncu on an H100, 32 rows of the 1.5B BF16 model, mmf 94% of a
// 13.8 ms pass, ~133 us a product (gate+up reads 55 MB: ~18 us of HBM).
// A variable for the tests and benchmarks.
var blasMinRows = mmfMinRows

// blasWorkspaceBytes is the workspace given to cuBLAS (cublasSetWorkspace:
// NVIDIA's recommendation for Hopper), so that it allocates nothing in a
// call.
const blasWorkspaceBytes = 32 << 20

// cuBLAS's constants (cublas_api.h, library_types.h).
const (
	blasOpN, blasOpT   = 0, 1
	cudaR32F, cudaR16F = 0, 2
	cudaR16BF          = 14
	blasCompute32F     = 68
	blasGemmAlgo       = 0xffffffff // CUBLAS_GEMM_DEFAULT (-1) as a 32-bit argument
	blasLoScaleF16     = 2048       // blas_split_f16 stores lo x 2^11
)

// blas is a Device's cuBLAS: the library's entry points, a handle bound
// to the device's stream, its workspace and the scratch of the split
// activations.
type blas struct {
	lib                                      uintptr
	create, destroy, setStream, setWorkspace uintptr
	gemmEx                                   uintptr
	handle                                   uintptr
	workspace                                devptr
	split                                    devptr // hi then lo, splitBytes/2 each
	splitBytes                               int
	// stack is the scratch of the stacked products' GEMM (2m rows of the
	// product's outputs, blas_sum adds them); normSplit and sum say that
	// the PTX has rmsnorm_split_* and blas_sum (an older PTX runs the
	// split and the two GEMMs as before).
	stack              devptr
	stackBytes         int
	normSplit, sum     bool
	one, zero, loScale float32 // GEMM scalars (host pointer mode)
	// lastDT is the weight type of the last product; pre, when set, says
	// that the scratch holds the split of the activation it names, made
	// by blasSiluSplit for the next product (the down product).
	lastDT tensor.DType
	pre    blasPre
}

// blasPre names an activation split ahead of its product: m rows of cols
// floats packed at src, split for dt's GEMMs.
type blasPre struct {
	src     devptr
	m, cols int
	dt      tensor.DType
}

// blasSymbols names each entry point (the _v2 names first, as cublas_v2.h
// maps them).
func (b *blas) symbols() []struct {
	names []string
	addr  *uintptr
} {
	return []struct {
		names []string
		addr  *uintptr
	}{
		{[]string{"cublasCreate_v2", "cublasCreate"}, &b.create},
		{[]string{"cublasDestroy_v2", "cublasDestroy"}, &b.destroy},
		{[]string{"cublasSetStream_v2", "cublasSetStream"}, &b.setStream},
		{[]string{"cublasSetWorkspace_v2", "cublasSetWorkspace"}, &b.setWorkspace},
		{[]string{"cublasGemmEx"}, &b.gemmEx},
	}
}

// openBLAS loads the first of names that opens and resolves cuBLAS's entry
// points in it.
func openBLAS(names []string) (*blas, error) {
	if os.Getenv(blasOffEnv) == "1" {
		return nil, fmt.Errorf("cuBLAS turned off (%s=1)", blasOffEnv)
	}
	var errs []error
	b := &blas{one: 1, zero: 0, loScale: 1.0 / blasLoScaleF16}
	for _, n := range names {
		lib, err := purego.Dlopen(n, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.lib = lib
		break
	}
	if b.lib == 0 {
		return nil, fmt.Errorf("no cuBLAS library (%w)", errors.Join(errs...))
	}
	for _, s := range b.symbols() {
		for _, n := range s.names {
			if a, err := purego.Dlsym(b.lib, n); err == nil && a != 0 {
				*s.addr = a
				break
			}
		}
		if *s.addr == 0 {
			purego.Dlclose(b.lib)
			return nil, fmt.Errorf("cuBLAS lacks %s", s.names[0])
		}
	}
	return b, nil
}

// blasCheck turns a cublasStatus_t into an error naming the call.
func blasCheck(op string, status uintptr) error {
	if s := int32(uint32(status)); s != 0 {
		return fmt.Errorf("cuda: %s: cuBLAS status %d", op, s)
	}
	return nil
}

// call runs a cuBLAS entry point (at most 19 integer or pointer
// arguments: purego.SyscallN, no reflection).
func (b *blas) call(fn uintptr, a ...uintptr) uintptr {
	r, _, _ := purego.SyscallN(fn, a...)
	return r
}

// initBLAS gives the device a cuBLAS handle on its stream with its
// workspace, and split scratch for splitElems activation values and
// stacked-product scratch for stackElems outputs (grown, never shrunk),
// on first use; the device must be bound. Without cuBLAS it records why
// (BLASReason) and returns nil: the mmf kernels run.
func (d *Device) initBLAS(splitElems, stackElems int) error {
	if !d.blasTried {
		d.blasTried = true
		for _, k := range []string{"blas_split_bf16", "blas_split_f16", "blas_bias", "blas_silu_split_bf16", "blas_silu_split_f16"} {
			if !d.has(k) {
				d.blasReason = "the kernels' PTX lacks " + k
				return nil
			}
		}
		b, err := openBLAS(blasLibNames)
		if err != nil {
			d.blasReason = err.Error()
			return nil
		}
		if err := blasCheck("cublasCreate", b.call(b.create, uintptr(unsafe.Pointer(&b.handle)))); err != nil {
			d.blasReason = err.Error()
			return nil
		}
		ws, err := d.alloc(blasWorkspaceBytes)
		if err != nil {
			b.call(b.destroy, b.handle)
			return err
		}
		b.workspace = ws
		err = errors.Join(blasCheck("cublasSetStream", b.call(b.setStream, b.handle, d.stream)),
			blasCheck("cublasSetWorkspace", b.call(b.setWorkspace, b.handle, uintptr(ws), blasWorkspaceBytes)))
		if err != nil {
			b.call(b.destroy, b.handle)
			d.free(ws)
			d.blasReason = err.Error()
			return nil
		}
		b.normSplit = d.has("rmsnorm_split_bf16") && d.has("rmsnorm_split_f16")
		b.sum = d.has("blas_sum")
		d.blas = b
	}
	b := d.blas
	if b == nil {
		return nil
	}
	return errors.Join(d.growScratch(&b.split, &b.splitBytes, 4*splitElems, "operand"),
		d.growScratch(&b.stack, &b.stackBytes, 4*stackElems, "stacked product"))
}

// growScratch replaces the scratch at *p (*have bytes) with one of bytes
// when it is smaller.
func (d *Device) growScratch(p *devptr, have *int, bytes int, what string) error {
	if bytes <= *have {
		return nil
	}
	n, err := d.alloc(bytes)
	if err != nil {
		return fmt.Errorf("cuda: cuBLAS %s scratch: %w", what, err)
	}
	if err := d.sync(); err != nil { // the old scratch may still be read
		d.free(n)
		return err
	}
	if *p != 0 {
		d.free(*p)
	}
	*p, *have = n, bytes
	return nil
}

// blasStackTiles and blasStackMaxCols choose the stacked products: those
// whose hi GEMM alone would make fewer output tiles of 128 x 128 than
// blasStackTiles (fewer than an H100's 132 SMs: most of the GPU idle) and
// that have at most blasStackMaxCols columns (a short reduction, so the
// GEMM's set-up and tail weigh most) run as one GEMM of the stacked hi
// and lo rows (twice the tiles) into scratch, and blas_sum adds the two
// halves (with the bias, or onto y) instead of blas_bias and a second
// GEMM. Variables for the tests and benchmarks (APR_CUDA_TUNE).
var (
	blasStackTiles   = 132
	blasStackMaxCols = 4096
)

// blasNormSplit lets RMSNorm write the split for the cuBLAS products
// after it (rmsNormSplit); a variable for the benchmarks.
var blasNormSplit = true

// blasStacks reports whether a product of rows x cols weights by m rows
// is one to stack.
func blasStacks(rows, cols, m int) bool {
	return ceilDiv(rows, 128)*ceilDiv(m, 128) < blasStackTiles && cols <= blasStackMaxCols
}

// BLASReason is why the device runs no cuBLAS products ("" when it does or
// has not tried yet: a model with float weights tries at load).
func (d *Device) BLASReason() string {
	unlock := d.bind()
	defer unlock()
	return d.blasReason
}

// blasType is the cuBLAS data type of a weight type's GEMM operands, or -1
// where cuBLAS does not take it.
func blasType(dt tensor.DType) int {
	switch dt {
	case tensor.BF16:
		return cudaR16BF
	case tensor.F16:
		return cudaR16F
	}
	return -1
}

// useBLAS reports whether the product of w by m activation rows of cols
// floats (actStride bytes apart, at act) goes to cuBLAS.
func (d *Device) useBLAS(w *matrix, act devptr, actStride, m int) bool {
	b := d.blas
	return b != nil && m >= blasMinRows && blasType(w.dt) >= 0 && w.cols%8 == 0 && w.rowBytes%16 == 0 &&
		act%16 == 0 && actStride%16 == 0 && 4*m*w.cols <= b.splitBytes
}

// blasMatmul runs matmul's product y[c] (+)= W·act[c] + bias on cuBLAS
// when useBLAS says so; ran is false when it does not (nothing launched).
func (d *Device) blasMatmul(w *matrix, act devptr, actStride int, y devptr, yStride int, bias devptr, accumulate bool, m int) (ran bool, err error) {
	if !d.useBLAS(w, act, actStride, m) {
		return false, nil
	}
	b := d.blas
	split, loScale := kernelName("blas_split_", w.dt), &b.one
	if w.dt == tensor.F16 {
		loScale = &b.loScale
	}
	hi, lo := b.parts(m, w.cols)
	pre := b.pre
	b.pre, b.lastDT = blasPre{}, w.dt
	if pre != (blasPre{src: act, m: m, cols: w.cols, dt: w.dt}) || actStride != 4*w.cols {
		if err := d.launch2(split, ceilDiv(w.cols, 4*256), m, 256, 0, act, int64(actStride/4), w.cols, hi, lo); err != nil {
			return true, err
		}
	}
	dt, lda := uintptr(blasType(w.dt)), uintptr(w.rowBytes/2)
	if b.sum && blasStacks(w.rows, w.cols, m) && 8*m*w.rows <= b.stackBytes {
		// hi and lo are one 2m-row operand: one GEMM into the scratch.
		if err := b.gemm(w, dt, lda, hi, 2*m, &b.one, &b.zero, b.stack, w.rows); err != nil {
			return true, fmt.Errorf("%w (%s, %dx%d by %d rows, stacked)", err, w.name, w.rows, w.cols, m)
		}
		return true, d.launch2("blas_sum", ceilDiv(w.rows, 256), m, 256, 0, b.stack, y, yStride, bias, w.rows, m,
			*loScale, boolInt(accumulate))
	}
	beta := &b.zero
	if bias != 0 {
		if err := d.launch2("blas_bias", ceilDiv(w.rows, 256), m, 256, 0, y, yStride, bias, w.rows, boolInt(accumulate)); err != nil {
			return true, err
		}
		beta = &b.one
	} else if accumulate {
		beta = &b.one
	}
	// Column-major: y^T (rows x m, ldc yStride) = op_T(W^T stored as cols x
	// rows, lda rowBytes/2) x (x^T, cols x m, ldb cols).
	for i, part := range []struct {
		x           devptr
		alpha, beta *float32
	}{{hi, &b.one, beta}, {lo, loScale, &b.one}} {
		if err := b.gemm(w, dt, lda, part.x, m, part.alpha, part.beta, y, yStride); err != nil {
			return true, fmt.Errorf("%w (%s, %dx%d by %d rows, part %d)", err, w.name, w.rows, w.cols, m, i)
		}
	}
	return true, nil
}

// parts returns where the split scratch holds the hi and the lo parts of
// m rows of cols values (lo right after hi: the stacked products read
// them as one operand of 2m rows).
func (b *blas) parts(m, cols int) (hi, lo devptr) {
	return b.split, b.split + devptr(2*m*cols)
}

// gemm runs y (n rows of w.rows outputs, yStride floats apart) = alpha
// w·x + beta y for n packed rows of w.cols 16-bit values at x.
func (b *blas) gemm(w *matrix, dt, lda uintptr, x devptr, n int, alpha, beta *float32, y devptr, yStride int) error {
	st := b.call(b.gemmEx, b.handle, blasOpT, blasOpN, uintptr(w.rows), uintptr(n), uintptr(w.cols),
		uintptr(unsafe.Pointer(alpha)), uintptr(w.ptr), dt, lda, uintptr(x), dt, uintptr(w.cols),
		uintptr(unsafe.Pointer(beta)), uintptr(y), cudaR32F, uintptr(yStride), blasCompute32F,
		blasGemmAlgo)
	runtime.KeepAlive(b)
	return blasCheck("cublasGemmEx", st)
}

// prepareBLAS readies cuBLAS (initBLAS) for a model with BF16 or F16
// matrices: split scratch for a chunk of rows of the widest such matrix.
func (g *Model) prepareBLAS() error {
	widest, stacked := 0, 0
	for _, w := range g.matrices() {
		if w != nil && blasType(w.dt) >= 0 {
			widest = max(widest, w.cols)
			if blasStacks(w.rows, w.cols, blasMinRows) {
				stacked = max(stacked, w.rows)
			}
		}
	}
	if widest == 0 {
		return nil
	}
	return g.dev.initBLAS(g.chunk*widest, 2*g.chunk*stacked)
}

// has reports whether the kernels' module has kernel name (a PTX older
// than the Go code may lack the newest kernels).
func (d *Device) has(name string) bool {
	_, err := d.fn(name)
	return err == nil
}

// blasSiluSplit runs siluQuant's silu(gate) * up for m rows of gu (n gate
// then n up values a row) into out, unquantized, and splits the outputs
// for the next product's GEMMs in the same kernel, when that product will
// be a cuBLAS one of the type of the last (gate/up): ran is false when
// not (nothing launched).
func (d *Device) blasSiluSplit(gu, out devptr, n, m int, ggml bool) (ran bool, err error) {
	b := d.blas
	if b == nil || m < blasMinRows || n%8 != 0 || gu%16 != 0 || out%16 != 0 || 4*m*n > b.splitBytes || blasType(b.lastDT) < 0 {
		return false, nil
	}
	name := kernelName("blas_silu_split_", b.lastDT)
	b.pre = blasPre{}
	hi, lo := b.parts(m, n)
	if err := d.launch2(name, ceilDiv(n, 4*256), m, 256, 0, gu, out, n, boolInt(ggml), hi, lo); err != nil {
		return true, err
	}
	b.pre = blasPre{src: out, m: m, cols: n, dt: b.lastDT}
	return true, nil
}

// rmsNormSplit runs rmsNorm's normalisation (no quantization) of m rows
// of n values into out and writes the outputs' hi and lo parts in the
// same kernel for the next products' GEMMs, when those are cuBLAS products
// of dt weights: ran is false when not (nothing launched).
func (d *Device) rmsNormSplit(x, w, out devptr, n, m int, eps float32, ggml bool, sel devptr, dt tensor.DType) (ran bool, err error) {
	b := d.blas
	if b == nil || !b.normSplit || !blasNormSplit || m < blasMinRows || blasType(dt) < 0 || n%8 != 0 || out%16 != 0 || 4*m*n > b.splitBytes {
		return false, nil
	}
	name := kernelName("rmsnorm_split_", dt)
	b.pre = blasPre{}
	hi, lo := b.parts(m, n)
	if err := d.launch(name, m, rmsThreads(n), 0, x, w, out, n, eps, boolInt(ggml), sel, hi, lo); err != nil {
		return true, err
	}
	b.pre = blasPre{src: out, m: m, cols: n, dt: dt}
	return true, nil
}
