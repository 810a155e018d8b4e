//go:build !amd64 || purego

package cpu

// siluMulFast does nothing where no assembly exists.
func siluMulFast(gate, up []float32) int { return 0 }
