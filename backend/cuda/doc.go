// Package cuda runs apr's forward pass on an NVIDIA GPU.
//
// The CUDA driver API (libcuda.so.1) is loaded at run time with purego, so
// building apr needs neither cgo nor the CUDA toolkit; Available reports,
// in one line, why a machine cannot use it. The kernels are CUDA C in
// kernels/kernels.cu, compiled to PTX for sm_90 by nvcc (the go:generate
// line in kernels.go) and committed; the driver JIT-compiles the embedded
// PTX when the module loads. APR_CUDA_PTX names a PTX file to load instead.
//
// Model holds a Qwen2/LLaMA model's weights resident on the device in their
// stored encoding (Q8_0, Q5_0, Q4_K, Q6_K, F16, BF16, F32), one sequence's
// KV cache (F16 or float32) and the activations. Decode runs one token: the
// step is captured once as a CUDA graph that reads the token and position
// from device memory, and replayed; DecodeArgmax brings back only the
// greedy token.
//
// Numerics follow the CPU backend: activations are quantized to ggml's
// 8-bit blocks with the same rounding, quantized blocks are multiplied in
// integers, and every float sum runs in the order of quant's portable
// kernels and backend/cpu's loops, so the GPU's logits are bit-identical to
// the CPU engine's on GGUF files when quant runs its portable kernels. The
// GPU tests skip without a driver; on a GPU machine run them as
//
//	go test -tags purego ./backend/cuda
//
// (without the tag the CPU side uses quant's AVX2 kernels, whose other
// summation order lets quantized logits differ by a few percent, and the
// test loosens its bounds for GGUF files).
package cuda
