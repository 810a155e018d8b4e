//go:build !purego

package quant

import (
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// TestAVX2TilesMatchRows runs the AVX2 tiles, which a CPU with AVX-512
// VNNI never selects, against the row kernels.
func TestAVX2TilesMatchRows(t *testing.T) {
	if !hasAVX2 {
		t.Log("no AVX2+FMA+F16C: no tiled kernels to compare")
		return
	}
	defer installTilers(hasVNNI, hasAVX2)
	installTilers(false, true)
	types := []tensor.DType{tensor.Q8_0, tensor.Q5_0}
	for _, dt := range types {
		if !HasTiles(dt) {
			t.Fatalf("%v: no AVX2 tiles", dt)
		}
	}
	checkMulTiles(t, types)
}

// BenchmarkAVX2Tiles is BenchmarkMulTiles with the AVX2 tiles.
func BenchmarkAVX2Tiles(b *testing.B) {
	if !hasAVX2 {
		b.Skip("no AVX2+FMA+F16C")
	}
	defer installTilers(hasVNNI, hasAVX2)
	installTilers(false, true)
	benchMulTiles(b, []tensor.DType{tensor.Q5_0, tensor.Q8_0})
}
