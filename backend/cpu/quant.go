package cpu

import (
	"fmt"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// quantSupported reports whether GGML block type dt has CPU kernels: a
// row decoder (for embeddings) and an integer dot product (for products).
func quantSupported(dt tensor.DType) bool {
	if _, err := quant.DequantizeRowFunc(dt); err != nil {
		return false
	}
	return quant.VecDotType(dt) != tensor.Invalid
}

// decodeQuantRow dequantizes one row of a block type (validated at load).
func decodeQuantRow(dt tensor.DType, src []byte, dst []float32) {
	f, err := quant.DequantizeRowFunc(dt)
	if err != nil {
		panic(fmt.Sprintf("cpu: %v (NewMatrix admits only supported types)", err))
	}
	f(src, dst)
}

// quantRowBlock is how many weight rows stay hot in cache while every input
// row is multiplied with them.
const quantRowBlock = 16

// matMulQuant multiplies by a block-quantized matrix as ggml does: each
// input row is quantized once to the weights' activation type (8-bit
// blocks), then every weight row is dotted with it in integers. The weight
// matrix is never expanded to float32.
func (b *Backend) matMulQuant(dst []float32, w *Matrix, x []float32, n int) {
	in, out := w.Cols, w.Rows
	vt := quant.VecDotType(w.DType)
	actBytes, err := vt.RowBytes(in)
	if err != nil {
		panic(fmt.Sprintf("cpu: %s: %v", w.Name, err))
	}
	act := make([]byte, n*actBytes)
	b.pool.Run(n, 1, func(lo, hi, _ int) {
		for t := lo; t < hi; t++ {
			if err := quant.QuantizeActivation(vt, x[t*in:(t+1)*in], act[t*actBytes:(t+1)*actBytes]); err != nil {
				panic(fmt.Sprintf("cpu: %s: %v", w.Name, err))
			}
		}
	})
	b.pool.Run(out, quantRowBlock, func(lo, hi, _ int) {
		for rb := lo; rb < hi; rb += quantRowBlock {
			re := min(rb+quantRowBlock, hi)
			for t := 0; t < n; t++ {
				err := quant.DotRows(w.DType, w.data, w.rowB, rb, re, act[t*actBytes:(t+1)*actBytes], in, dst[t*out+rb:t*out+re])
				if err != nil {
					panic(fmt.Sprintf("cpu: %s: %v", w.Name, err))
				}
			}
		}
	})
}
