//go:build purego

package cuda_test

// portableCPU is true when quant runs its portable Go kernels (build tag
// purego), whose float summation order the GPU kernels reproduce.
const portableCPU = true
