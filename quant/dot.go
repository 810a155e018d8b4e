package quant

import (
	"fmt"

	"github.com/apr-llm/apr/tensor"
)

// dotFunc computes the dot product of n elements: a weight row and an
// activation already in the kernel's activation type. Both slices hold at
// least the bytes of n elements; n is a whole number of blocks.
type dotFunc func(w, act []byte, n int) float32

// rowsFunc computes out[r-lo] = dot(row r) for the rows lo..hi-1 of w,
// stride bytes apart (arguments validated by DotRows).
type rowsFunc func(w []byte, stride, lo, hi int, act []byte, n int, out []float32)

// kernel pairs a weight type with its activation type and dot product, and
// optionally a kernel over many rows (fewer calls for short rows).
type kernel struct {
	act  tensor.DType
	dot  dotFunc
	rows rowsFunc
}

// kernels is indexed by the weight DType (an array, not a map: VecDot is
// called once per row).
var kernels = func() (k [tensor.IQ4_XS + 1]kernel) {
	k[tensor.F32] = kernel{act: tensor.F32, dot: dotF32F32}
	k[tensor.F16] = kernel{act: tensor.F32, dot: dotF16F32}
	k[tensor.BF16] = kernel{act: tensor.F32, dot: dotBF16F32}
	k[tensor.Q4_0] = kernel{act: tensor.Q8_0, dot: dotQ4_0}
	k[tensor.Q4_1] = kernel{act: tensor.Q8_1, dot: dotQ4_1}
	k[tensor.Q5_0] = kernel{act: tensor.Q8_0, dot: dotQ5_0}
	k[tensor.Q5_1] = kernel{act: tensor.Q8_1, dot: dotQ5_1}
	k[tensor.Q8_0] = kernel{act: tensor.Q8_0, dot: dotQ8_0}
	k[tensor.IQ4_NL] = kernel{act: tensor.Q8_0, dot: dotIQ4NL}
	k[tensor.Q2_K] = kernel{act: tensor.Q8_K, dot: dotQ2K}
	k[tensor.Q3_K] = kernel{act: tensor.Q8_K, dot: dotQ3K}
	k[tensor.Q4_K] = kernel{act: tensor.Q8_K, dot: dotQ4K}
	k[tensor.Q5_K] = kernel{act: tensor.Q8_K, dot: dotQ5K}
	k[tensor.Q6_K] = kernel{act: tensor.Q8_K, dot: dotQ6K}
	k[tensor.IQ4_XS] = kernel{act: tensor.Q8_K, dot: dotIQ4XS}
	return k
}()

func kernelFor(w tensor.DType) (kernel, bool) {
	if w < 0 || int(w) >= len(kernels) || kernels[w].dot == nil {
		return kernel{}, false
	}
	return kernels[w], true
}

// VecDotType returns the type the activation vector must be in for a dot
// product with weights of type w, as ggml's CPU backend chooses it: Q8_0 for
// Q4_0, Q5_0, Q8_0 and IQ4_NL; Q8_1 for Q4_1 and Q5_1; Q8_K for the K-quants
// and IQ4_XS. Float weights (F32, F16, BF16) take an F32 activation. It
// returns Invalid for types without a dot product.
func VecDotType(w tensor.DType) tensor.DType {
	k, ok := kernelFor(w)
	if !ok {
		return tensor.Invalid
	}
	return k.act
}

// QuantizeActivation encodes the activation vector x as type vt (normally
// VecDotType of the weights) into dst, which must hold exactly its bytes. Q8_0
// and Q8_1 follow ggml's x86 CPU quantizer (scale 127/amax, round half to
// even); Q8_K is quantize_row_q8_K_ref; F32, F16 and BF16 are plain
// conversions.
func QuantizeActivation(vt tensor.DType, x []float32, dst []byte) error {
	var f rowQuantizer
	switch vt {
	case tensor.Q8_0:
		f = actQ8_0
	case tensor.Q8_1:
		f = actQ8_1
	case tensor.Q8_K, tensor.F32, tensor.F16, tensor.BF16:
		f = quantizers[vt]
	default:
		return fmt.Errorf("quant: quantize activation: %v is not an activation type", vt)
	}
	if err := checkLen("quantize activation", vt, len(x), len(dst)); err != nil {
		return err
	}
	f(x, dst)
	return nil
}

// actQ8 is the body of ggml's AVX quantize_row_q8_0/q8_1 for one block. It
// returns d and the sum of the quants.
func actQ8(x []float32, qs []byte) (d float32, sum int) {
	x, qs = x[:qk], qs[:qk]
	var amax float32
	for _, v := range x {
		amax = max(amax, fabs(v))
	}
	d = amax / 127
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for j, v := range x {
		q := int8(nearestInt(v * id)) // |v*id| <= 127: rounds half to even
		qs[j] = byte(q)
		sum += int(q)
	}
	return d, sum
}

func actQ8_0(src []float32, dst []byte) {
	for i := range len(src) / qk {
		b := dst[34*i : 34*i+34]
		d, _ := actQ8(src[qk*i:], b[2:])
		putF16(b[0:], d)
	}
}

func actQ8_1(src []float32, dst []byte) {
	for i := range len(src) / qk {
		b := dst[36*i : 36*i+36]
		d, sum := actQ8(src[qk*i:], b[4:])
		putF16(b[0:], d)
		putF16(b[2:], d*float32(sum))
	}
}

// VecDot returns the dot product of n elements: the weight row wrow (type w)
// with act, an activation of type VecDotType(w) made by QuantizeActivation.
// Quantized rows are multiplied block by block in integers, as ggml's CPU
// backend does; results agree with ggml up to float summation order. It
// panics when w has no dot product or a length does not match n (a
// programming error, like an out-of-range index); DotRows validates and
// returns errors instead.
func VecDot(w tensor.DType, wrow, act []byte, n int) float32 {
	k, err := checkDot(w, len(wrow), len(act), n)
	if err != nil {
		panic(err)
	}
	return k.dot(wrow, act, n)
}

// checkDot validates the lengths of one dot product.
func checkDot(w tensor.DType, wlen, alen, n int) (kernel, error) {
	k, ok := kernelFor(w)
	if !ok {
		return kernel{}, fmt.Errorf("quant: dot: no dot product for weights of type %v", w)
	}
	if err := checkLen("dot: weights", w, n, wlen); err != nil {
		return kernel{}, err
	}
	if err := checkLen("dot: activation", k.act, n, alen); err != nil {
		return kernel{}, err
	}
	return k, nil
}

// DotRows computes out[r-lo] = VecDot(w, row r, act, n) for the rows lo..hi-1
// of the weight matrix wdata, whose rows are rowBytes apart (rowBytes is at
// least the bytes of n elements, larger for padded rows). It validates
// everything once and then runs the kernel row by row without allocation;
// callers split [0, rows) into ranges to spread a matrix-vector product over
// goroutines.
func DotRows(w tensor.DType, wdata []byte, rowBytes, lo, hi int, act []byte, n int, out []float32) error {
	k, ok := kernelFor(w)
	if !ok {
		return fmt.Errorf("quant: dot rows: no dot product for weights of type %v", w)
	}
	need, err := w.RowBytes(n)
	if err != nil {
		return fmt.Errorf("quant: dot rows: %w", err)
	}
	if err := checkLen("dot rows: activation", k.act, n, len(act)); err != nil {
		return err
	}
	switch {
	case rowBytes < need:
		return fmt.Errorf("quant: dot rows: row stride %d is less than the %d bytes of %d %v elements", rowBytes, need, n, w)
	case lo < 0 || hi < lo:
		return fmt.Errorf("quant: dot rows: bad row range [%d, %d)", lo, hi)
	case len(out) < hi-lo:
		return fmt.Errorf("quant: dot rows: output holds %d values, need %d", len(out), hi-lo)
	case hi > lo && rowBytes <= 0:
		return fmt.Errorf("quant: dot rows: row stride %d must be positive", rowBytes)
	case hi > lo && (len(wdata) < need || hi-1 > (len(wdata)-need)/rowBytes):
		return fmt.Errorf("quant: dot rows: rows [%d, %d) of stride %d exceed the %d weight bytes", lo, hi, rowBytes, len(wdata))
	}
	if k.rows != nil {
		k.rows(wdata, rowBytes, lo, hi, act, n, out)
		return nil
	}
	for r := lo; r < hi; r++ {
		off := r * rowBytes
		out[r-lo] = k.dot(wdata[off:off+need], act, n)
	}
	return nil
}
