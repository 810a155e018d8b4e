// Package cuda runs apr's forward pass on an NVIDIA GPU.
//
// The CUDA driver API (libcuda.so.1) is loaded at run time with purego, so
// building apr needs neither cgo nor the CUDA toolkit; Available reports,
// in one line, why a machine cannot use it. The kernels are CUDA C in
// kernels/kernels.cu, compiled to PTX for sm_90 by nvcc (the go:generate
// lines in kernels.go) and committed; the driver JIT-compiles the embedded
// PTX when the module loads. APR_CUDA_PTX names a PTX file to load instead.
// kernels/kernels.ptx.sources records the hash of the sources the PTX was
// built from, and TestPTXBuiltFromSources (no GPU needed) fails when they
// have changed since.
//
// Model holds a Qwen2/LLaMA model's weights resident on the device in their
// stored encoding (Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K, F16, BF16, F32), the
// KV caches (F16 or float32) of Options.Slots sequences and the activations
// of a pass. Forward runs a pass of rows of any slots and positions: dp4a
// matrix-vector kernels for one row, int8 tensor-core (mma.sync) kernels
// for 16 rows and more. Decode runs one token of slot 0 by replaying a
// CUDA graph captured once, which reads the row from device memory;
// DecodeArgmax brings back only the greedy token. With Options.FirstLayer
// the device holds the last layers and ForwardHidden takes the host's
// hidden states.
//
// Numerics follow the CPU backend: activations are quantized to ggml's
// 8-bit blocks with the same rounding, quantized blocks are multiplied in
// integers (exact in any order), and every float sum that rounds differs
// from the CPU's only where NOTES.md says (RMSNorm's sum of squares is a
// double tree); the GPU's logits are bit-identical to the CPU engine's on
// the shared GGUF files when quant runs its portable kernels. The
// GPU tests skip without a driver; on a GPU machine run them as
//
//	go test -tags purego ./backend/cuda
//
// (without the tag the CPU side uses quant's AVX2 kernels, whose other
// summation order lets quantized logits differ by a few percent, and the
// test loosens its bounds for GGUF files).
package cuda
