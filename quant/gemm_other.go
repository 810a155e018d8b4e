//go:build !amd64 || purego

package quant

// hasVNNI is false: no tiled assembly kernels on this architecture.
const hasVNNI = false
