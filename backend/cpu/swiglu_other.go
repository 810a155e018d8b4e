//go:build !amd64 || purego

package cpu

// siluMulGGMLFast does nothing where no assembly exists.
func siluMulGGMLFast(gate, up []float32) int { return 0 }
