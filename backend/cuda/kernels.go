package cuda

import (
	_ "embed"
	"errors"
	"fmt"
	"os"

	"github.com/apr-llm/apr/tensor"
)

// The kernels are CUDA C in kernels/kernels.cu, compiled to PTX for sm_90
// by nvcc (CUDA 13) and committed; the driver JIT-compiles the PTX when the
// module loads. Regenerate on a machine with the CUDA toolkit:
//
//go:generate nvcc -ptx -arch=sm_90 -O3 -o kernels/kernels.ptx kernels/kernels.cu

//go:embed kernels/kernels.ptx
var embeddedPTX []byte

// ptxEnv names a PTX file that replaces the embedded kernels (to test
// freshly compiled kernels without rebuilding).
const ptxEnv = "APR_CUDA_PTX"

// kernelPTX returns the kernels' PTX.
func kernelPTX() ([]byte, error) {
	if p := os.Getenv(ptxEnv); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("cuda: %s: %w", ptxEnv, err)
		}
		return b, nil
	}
	if len(embeddedPTX) == 0 {
		return nil, errors.New("cuda: kernels not built (run go generate ./backend/cuda with nvcc)")
	}
	return embeddedPTX, nil
}

// Threads per block of the row-per-warp kernels (8 rows a block).
const matvecThreads = 256

// matvecKernels names the matrix-vector kernel of each weight type.
var matvecKernels = map[tensor.DType]string{
	tensor.Q8_0: "matvec_q8_0",
	tensor.Q5_0: "matvec_q5_0",
	tensor.Q4_K: "matvec_q4_k",
	tensor.Q6_K: "matvec_q6_k",
	tensor.F32:  "matvec_f32",
	tensor.F16:  "matvec_f16",
	tensor.BF16: "matvec_bf16",
}

// getRowKernels names the row-decoding kernel of each type that has one;
// other types decode embedding rows on the host.
var getRowKernels = map[tensor.DType]string{
	tensor.F32:  "get_row_f32",
	tensor.F16:  "get_row_f16",
	tensor.BF16: "get_row_bf16",
	tensor.Q8_0: "get_row_q8_0",
}

// actType is the activation encoding a weight type's matvec reads: Q8_0
// or Q8_K blocks for quantized weights, float32 otherwise.
func actType(dt tensor.DType) tensor.DType {
	switch dt {
	case tensor.Q8_0, tensor.Q5_0:
		return tensor.Q8_0
	case tensor.Q4_K, tensor.Q6_K:
		return tensor.Q8_K
	}
	return tensor.F32
}

// matrix is a weight matrix [rows, cols] resident on the device in its
// stored encoding.
type matrix struct {
	name       string
	dt         tensor.DType
	rows, cols int
	rowBytes   int
	ptr        devptr
}

// checkMatrix reports whether the device can multiply by t.
func checkMatrix(t *tensor.Tensor) error {
	if len(t.Shape) != 2 {
		return fmt.Errorf("tensor %s: want a matrix, shape is %v", t.Name, t.Shape)
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	if _, ok := matvecKernels[t.DType]; !ok {
		return fmt.Errorf("tensor %s: the CUDA backend has no kernel for %v weights", t.Name, t.DType)
	}
	if (t.DType == tensor.F16 || t.DType == tensor.BF16) && t.Shape[1]%2 != 0 {
		return fmt.Errorf("tensor %s: %v rows of odd length %d", t.Name, t.DType, t.Shape[1])
	}
	return nil
}

// uploadMatrix copies a weight matrix to the device.
func (d *Device) uploadMatrix(t *tensor.Tensor) (*matrix, error) {
	if err := checkMatrix(t); err != nil {
		return nil, err
	}
	p, err := d.upload(t.Data[:t.Shape[0]*t.RowBytes()])
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return &matrix{name: t.Name, dt: t.DType, rows: t.Shape[0], cols: t.Shape[1], rowBytes: t.RowBytes(), ptr: p}, nil
}

// quantizeAct encodes n floats at x as vt (Q8_0 or Q8_K) into out.
func (d *Device) quantizeAct(vt tensor.DType, x, out devptr, n int) error {
	switch vt {
	case tensor.Q8_0:
		return d.launch("quantize_q8_0", ceilDiv(n/32*32, matvecThreads), matvecThreads, 0, x, out, n)
	case tensor.Q8_K:
		return d.launch("quantize_q8_k", ceilDiv(n/256*32, matvecThreads), matvecThreads, 0, x, out, n)
	}
	return fmt.Errorf("cuda: no activation quantizer for %v", vt)
}

// matvec computes y (+)= W·act + bias; act is in actType(w.dt), bias may
// be 0.
func (d *Device) matvec(w *matrix, act, y, bias devptr, accumulate bool) error {
	acc := 0
	if accumulate {
		acc = 1
	}
	return d.launch(matvecKernels[w.dt], ceilDiv(w.rows*32, matvecThreads), matvecThreads, 0,
		w.ptr, act, y, bias, w.rows, w.cols, int64(w.rowBytes), acc)
}

// getRow decodes row r of w (or the row that rowp holds, when not 0) to
// float32 at out.
func (d *Device) getRow(w *matrix, out, rowp devptr, r int) error {
	k, ok := getRowKernels[w.dt]
	if !ok {
		return fmt.Errorf("cuda: no row kernel for %v", w.dt)
	}
	return d.launch(k, ceilDiv(w.cols, 256), 256, 0, w.ptr, out, rowp, r, w.cols, int64(w.rowBytes))
}

// rmsNorm writes w * x/rms(x) (n values) to out, with ggml's numerics
// (cpu's RMSNormGGML) when ggml is set, else transformers' (RMSNorm).
func (d *Device) rmsNorm(x, w, out devptr, n int, eps float32, ggml bool) error {
	name := "rmsnorm"
	if ggml {
		name = "rmsnorm_ggml"
	}
	return d.launch(name, 1, 1024, 0, x, w, out, n, eps)
}

// rope rotates heads x dim values at v for position pos (or the one posp
// holds, when not 0).
func (d *Device) rope(v, invFreq devptr, heads, dim int, posp devptr, pos int, thetaScale float32, style int) error {
	n := heads * dim / 2
	return d.launch("rope", ceilDiv(n, 256), 256, 0, v, invFreq, heads, dim, posp, pos, thetaScale, style)
}

// kvStore writes dim keys and values at position pos (or posp's) of a
// cache.
func (d *Device) kvStore(k, v, kc, vc, posp devptr, pos, dim int, f16 bool) error {
	return d.launch("kv_store", ceilDiv(dim, 256), 256, 0, k, v, kc, vc, posp, pos, dim, boolInt(f16))
}

// attention runs one token's attention over n cached positions (or
// *posp+1, when posp is not 0).
// With fa (an F16 cache only) it is ggml's flash attention for one row of
// a pass of rows rows (or *rowsp, when rowsp is not 0), as cpu's
// FlashAttentionGGML computes it: ggml's tiled kernel from 64 rows on.
func (d *Device) attention(q, kc, vc, out, scores devptr, heads, kvHeads, dim int, posp devptr, n, ctx int, scale float32, f16, fa bool, rowsp devptr, rows int) error {
	if fa && f16 {
		return d.launch("attention_fa", heads, 256, 4*(2*dim+64), q, kc, vc, out, scores, heads, kvHeads, dim, posp, n, ctx, scale, rowsp, rows)
	}
	return d.launch("attention", heads, 256, 4*dim, q, kc, vc, out, scores, heads, kvHeads, dim, posp, n, ctx, scale, boolInt(f16))
}

// siluMul sets g = silu(g) * u over n values, with ggml's exponential
// (cpu's SiLUMulGGML) when ggml is set.
func (d *Device) siluMul(g, u devptr, n int, ggml bool) error {
	name := "silu_mul"
	if ggml {
		name = "silu_mul_ggml"
	}
	return d.launch(name, ceilDiv(n, 256), 256, 0, g, u, n)
}

// add sets x += y over n values.
func (d *Device) add(x, y devptr, n int) error {
	return d.launch("add", ceilDiv(n, 256), 256, 0, x, y, n)
}

// argmax writes the index of the largest of n values to out (an int32).
func (d *Device) argmax(x devptr, n int, out devptr) error {
	return d.launch("argmax", 1, 1024, 0, x, n, out)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
