//go:build !purego

package cpu

import "golang.org/x/sys/cpu"

// hasAVX2 selects the assembly of act_amd64.s (AVX2 with FMA).
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func siluMulAVX2(gate, up *float32, n int)

// siluMulFast runs the assembly over the multiple of 8 and returns how
// many elements it did.
func siluMulFast(gate, up []float32) int {
	m := len(gate) &^ 7
	if !hasAVX2 || m == 0 {
		return 0
	}
	siluMulAVX2(&gate[0], &up[0], m)
	return m
}
