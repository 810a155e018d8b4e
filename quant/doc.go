// Package quant implements ggml's block formats bit-exactly: dequantization
// to float32, the reference quantizers that llama-quantize uses (without an
// importance matrix), the activation quantizers of ggml's CPU backend and
// integer dot products between quantized weight rows and quantized
// activations.
//
// Block layouts follow ggml-common.h; all multi-byte fields are little-endian.
// Float arithmetic is written in float32 in the order ggml's C code uses, so
// results match ggml bit for bit.
//
// The entry points:
//   - Dequantize / DequantizeRowFunc: blocks to float32.
//   - Quantize: float32 to blocks (ggml_quantize_chunk without imatrix).
//   - VecDotType, QuantizeActivation, VecDot, DotRows: the CPU matrix-vector
//     product as ggml does it, weights times an activation quantized to
//     Q8_0, Q8_1 or Q8_K with integer dot products per block.
package quant
