package quant

import "github.com/apr-llm/apr/tensor"

// QuantizeActivationFast is QuantizeActivation for the matrix-vector
// products of decoding, where it runs once per product: with the assembly
// quantizers that the CPU has (Q8_0 and Q8_K with AVX-512, the ones the
// tiled prompt kernels use) it writes the same bytes for finite inputs, a
// few times faster; NaN or Inf give other, equally meaningless, bytes.
// Without them it is QuantizeActivation.
func QuantizeActivationFast(vt tensor.DType, x []float32, dst []byte) error {
	if vt < 0 || int(vt) >= len(fastActivation) || fastActivation[vt] == nil {
		return QuantizeActivation(vt, x, dst)
	}
	if err := checkLen("quantize activation", vt, len(x), len(dst)); err != nil {
		return err
	}
	fastActivation[vt](x, dst)
	return nil
}
