package cpu

import "github.com/apr-llm/apr/tensor"

// quantSupported reports whether GGML block type dt has CPU kernels.
func quantSupported(dt tensor.DType) bool { return false }

// decodeQuantRow dequantizes one row of a block type.
func decodeQuantRow(dt tensor.DType, src []byte, dst []float32) {
	panic("cpu: unsupported dtype " + dt.String())
}

// matMulQuant multiplies by a block-quantized matrix.
func (b *Backend) matMulQuant(dst []float32, w *Matrix, x []float32, n int) {
	panic("cpu: unsupported dtype " + w.DType.String())
}
