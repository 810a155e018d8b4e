package cpu

import (
	"fmt"
	"unsafe"

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
func Dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
		s4 += a[i+4] * b[i+4]
		s5 += a[i+5] * b[i+5]
		s6 += a[i+6] * b[i+6]
		s7 += a[i+7] * b[i+7]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// dotBF16 is the dot product of a bf16 row with a float32 vector.
func dotBF16(w []uint16, x []float32) float32 {
	n := len(x)
	w = w[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += tensor.BF16ToF32(w[i]) * x[i]
		s1 += tensor.BF16ToF32(w[i+1]) * x[i+1]
		s2 += tensor.BF16ToF32(w[i+2]) * x[i+2]
		s3 += tensor.BF16ToF32(w[i+3]) * x[i+3]
	}
	for ; i < n; i++ {
		s0 += tensor.BF16ToF32(w[i]) * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}
