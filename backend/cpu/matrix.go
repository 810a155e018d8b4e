package cpu

import (
	"fmt"
	"unsafe"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// Matrix is a weight matrix [Rows, Cols] kept in its stored encoding.
type Matrix struct {
	Name  string
	DType tensor.DType
	Rows  int
	Cols  int
	data  []byte
	rowB  int
}

// NewMatrix wraps a 2-D tensor without copying it.
func NewMatrix(t *tensor.Tensor) (*Matrix, error) {
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("tensor %q: want a matrix, shape is %v", t.Name, t.Shape)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	switch t.DType {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		if !quantSupported(t.DType) {
			return nil, fmt.Errorf("tensor %q: dtype %v is not supported for matrix products", t.Name, t.DType)
		}
	}
	return &Matrix{Name: t.Name, DType: t.DType, Rows: t.Shape[0], Cols: t.Shape[1], data: t.Data, rowB: t.RowBytes()}, nil
}

// row returns the stored bytes of row r.
func (m *Matrix) row(r int) []byte { return m.data[r*m.rowB : (r+1)*m.rowB] }

// RowF32 decodes row r into dst (len Cols).
func (m *Matrix) RowF32(dst []float32, r int) {
	decodeRow(m.DType, m.row(r), dst)
}

func asU16(b []byte) []uint16 {
	if len(b) < 2 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

func asF32(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// decodeRow widens one stored row to float32.
func decodeRow(dt tensor.DType, src []byte, dst []float32) {
	switch dt {
	case tensor.F32:
		copy(dst, asF32(src))
	case tensor.BF16:
		s := asU16(src)[:len(dst)]
		for i, h := range s {
			dst[i] = tensor.BF16ToF32(h)
		}
	case tensor.F16:
		s := asU16(src)[:len(dst)]
		for i, h := range s {
			dst[i] = tensor.F16ToF32(h)
		}
	default:
		decodeQuantRow(dt, src, dst)
	}
}

// Vector decodes a 1-D tensor (norm weights, biases) to float32.
func Vector(t *tensor.Tensor) ([]float32, error) {
	if len(t.Shape) != 1 {
		return nil, fmt.Errorf("tensor %q: want a vector, shape is %v", t.Name, t.Shape)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	switch t.DType {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		if !quantSupported(t.DType) {
			return nil, fmt.Errorf("tensor %q: dtype %v is not supported", t.Name, t.DType)
		}
	}
	out := make([]float32, t.Shape[0])
	decodeRow(t.DType, t.Data, out)
	return out, nil
}

// Dot is the float32 dot product of equal-length slices.
func Dot(a, b []float32) float32 { return quant.DotF32(a, b[:len(a)]) }
