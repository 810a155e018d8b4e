//go:build !purego

package cpu

//go:noescape
func siluMulGGMLAVX2(gate, up *float32, n int)

// siluMulGGMLFast runs SiLUMulGGML's assembly over the multiple of 8 and
// returns how many elements it did.
func siluMulGGMLFast(gate, up []float32) int {
	m := len(gate) &^ 7
	if !hasAVX2 || m == 0 {
		return 0
	}
	_ = up[m-1]
	siluMulGGMLAVX2(&gate[0], &up[0], m)
	return m
}
