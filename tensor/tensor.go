package tensor

import (
	"fmt"
	"math/bits"
)

// Tensor is a named, typed view over bytes (usually a slice of an mmapped
// file). Shape is row-major in apr's canonical order: for a weight matrix it is
// [out, in], so the last dimension is the row length. Formats with another
// order (GGUF) translate before building a Tensor.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape, or an error on overflow or a
// negative dimension.
func NumElements(shape []int) (int, error) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > uint64(maxInt) {
			return 0, fmt.Errorf("shape %v: element count overflows", shape)
		}
		n = lo
	}
	return int(n), nil
}

// Len returns the number of elements (0 on overflow, which Validate reports).
func (t *Tensor) Len() int {
	n, _ := NumElements(t.Shape)
	return n
}

// Cols is the length of the last dimension (the row length); 1 for a scalar.
func (t *Tensor) Cols() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[len(t.Shape)-1]
}

// Rows is the product of all dimensions but the last.
func (t *Tensor) Rows() int {
	if t.Cols() == 0 {
		return 0
	}
	return t.Len() / t.Cols()
}

// RowBytes is the byte length of one row.
func (t *Tensor) RowBytes() int {
	n, _ := t.DType.RowBytes(t.Cols())
	return n
}

// Validate checks that the shape, dtype and byte length agree. For block
// types each row must be a whole number of blocks.
func (t *Tensor) Validate() error {
	if !t.DType.Valid() {
		return fmt.Errorf("tensor %q: unknown dtype %v", t.Name, t.DType)
	}
	n, err := NumElements(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	var want int
	if t.DType.BlockSize() > 1 && len(t.Shape) > 0 {
		rb, err := t.DType.RowBytes(t.Cols())
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		hi, lo := bits.Mul64(uint64(rb), uint64(t.Rows()))
		if hi != 0 || lo > uint64(maxInt) {
			return fmt.Errorf("tensor %q: byte size overflows", t.Name)
		}
		want = int(lo)
	} else {
		want, err = t.DType.RowBytes(n)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
	}
	if len(t.Data) != want {
		return fmt.Errorf("tensor %q: shape %v of %v needs %d bytes, has %d", t.Name, t.Shape, t.DType, want, len(t.Data))
	}
	return nil
}

// Row returns the bytes of row i.
func (t *Tensor) Row(i int) []byte {
	rb := t.RowBytes()
	return t.Data[i*rb : (i+1)*rb]
}
