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
//   - DotF32, DotF16, AxpyF32, AxpyF16: float vector kernels for attention.
//
// On amd64 CPUs with AVX2, FMA and F16C (x86-64-v3), chosen at start-up
// through golang.org/x/sys/cpu, the dot products of F32, F16, BF16, Q4_0,
// Q5_0, Q8_0, Q4_K, Q5_K and Q6_K weights run in assembly (dot_amd64.s,
// written after ggml's AVX2 code); the portable Go kernels stay as the
// reference that tests compare them with. Integer block sums are identical;
// float sums run in eight lanes, so results differ in the last bits. Where
// the CPU also has AVX-512 F/BW/VL and VNNI (Ice Lake, Zen 4 and later), the
// Q4_0, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K row kernels are replaced by
// VPDPBUSD/VPDPWSSD versions (dot_avx512_amd64.s: the 32-element types four
// rows at a time, all with software prefetch) that compute the same lanes
// in the same order, so their results are bit-identical to the AVX2
// kernels'; GODEBUG=cpu.avx512vnni=off turns them off. The purego build
// tag keeps the portable kernels.
package quant
