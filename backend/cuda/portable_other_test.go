//go:build !purego

package cuda_test

// portableCPU is false when quant may run its AVX2 assembly, which sums
// floats in another order than the GPU kernels (see TestDecodeMatchesCPU).
const portableCPU = false
