package quant_test

import (
	"fmt"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// A matrix-vector product over Q4_K weights: quantize the activation once to
// the kernel's type, then take integer dot products row by row.
func ExampleDotRows() {
	const rows, n = 3, 256
	x := make([]float32, n)
	wf := make([]float32, rows*n)
	for i := range x {
		x[i] = 1
	}
	for r := range rows {
		for i := range n {
			wf[r*n+i] = float32(r + 1)
		}
	}
	rowBytes, _ := tensor.Q4_K.RowBytes(n)
	w := make([]byte, rows*rowBytes)
	if err := quant.Quantize(tensor.Q4_K, wf, w); err != nil {
		panic(err)
	}
	vt := quant.VecDotType(tensor.Q4_K)
	actBytes, _ := vt.RowBytes(n)
	act := make([]byte, actBytes)
	if err := quant.QuantizeActivation(vt, x, act); err != nil {
		panic(err)
	}
	y := make([]float32, rows)
	if err := quant.DotRows(tensor.Q4_K, w, rowBytes, 0, rows, act, n, y); err != nil {
		panic(err)
	}
	fmt.Printf("%v %.0f\n", vt, y) // within quantization error of 256, 512, 768
	// Output: Q8_K [256 512 768]
}
