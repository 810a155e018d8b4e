package rosetta

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/apr-llm/apr/convert"
	"github.com/apr-llm/apr/tensor"
)

// TensorDiff compares one canonical tensor name across two models.
type TensorDiff struct {
	Name   string `json:"name"`
	ShapeA []int  `json:"shape_a,omitempty"`
	ShapeB []int  `json:"shape_b,omitempty"`
	DTypeA string `json:"dtype_a,omitempty"`
	DTypeB string `json:"dtype_b,omitempty"`
	// MaxAbsDiff is max |a-b| after both are dequantized to float32 (0
	// when the shapes differ or a side is missing).
	MaxAbsDiff float64 `json:"max_abs_diff"`
	// Identical: same type, shape and bytes.
	Identical bool   `json:"identical"`
	Problem   string `json:"problem,omitempty"` // "missing in A", "missing in B", "shape differs"
}

// Diff compares the tensors of a and b by canonical name (so a GGUF and a
// SafeTensors folder of one model line up), in a's order followed by the
// names only b has.
func Diff(a, b *convert.Model) ([]TensorDiff, error) {
	var out []TensorDiff
	for _, ta := range a.Tensors {
		d := TensorDiff{Name: ta.Name, ShapeA: ta.Shape, DTypeA: ta.DType.String()}
		tb, ok := b.Tensor(ta.Name)
		if !ok {
			d.Problem = "missing in B"
			out = append(out, d)
			continue
		}
		d.ShapeB, d.DTypeB = tb.Shape, tb.DType.String()
		if !slices.Equal(ta.Shape, tb.Shape) {
			d.Problem = "shape differs"
			out = append(out, d)
			continue
		}
		d.Identical = ta.DType == tb.DType && slices.Equal(ta.Data, tb.Data)
		if !d.Identical {
			m, err := maxAbsDiff(ta, tb)
			if err != nil {
				return nil, err
			}
			d.MaxAbsDiff = m
		}
		out = append(out, d)
	}
	for _, tb := range b.Tensors {
		if _, ok := a.Tensor(tb.Name); !ok {
			out = append(out, TensorDiff{Name: tb.Name, ShapeB: tb.Shape, DTypeB: tb.DType.String(), Problem: "missing in A"})
		}
	}
	return out, nil
}

func maxAbsDiff(a, b *tensor.Tensor) (float64, error) {
	fa, err := convert.Cast(a, tensor.F32)
	if err != nil {
		return 0, fmt.Errorf("rosetta: %w", err)
	}
	fb, err := convert.Cast(b, tensor.F32)
	if err != nil {
		return 0, fmt.Errorf("rosetta: %w", err)
	}
	var m float64
	for i := 0; i+4 <= len(fa.Data); i += 4 {
		x := math.Float32frombits(binary.LittleEndian.Uint32(fa.Data[i:]))
		y := math.Float32frombits(binary.LittleEndian.Uint32(fb.Data[i:]))
		d := math.Abs(float64(x) - float64(y))
		if d > m || math.IsNaN(d) {
			m = d
		}
	}
	return m, nil
}
