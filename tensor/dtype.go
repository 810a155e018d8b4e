// Package tensor defines element types, shapes and typed views over (usually
// mmapped) tensor bytes. GGML block types live here with their sizes so that
// every format and backend agrees on them.
package tensor

import (
	"fmt"
	"math/bits"
)

// DType is the element type of a tensor, covering both plain numeric types
// (SafeTensors) and GGML block-quantized types (GGUF).
type DType int

// The element types apr knows. The GGML values do not equal ggml's type ids;
// use GGMLType / FromGGMLType to convert.
const (
	Invalid DType = iota
	F32
	F16
	BF16
	F64
	I8
	I16
	I32
	I64
	U8
	U16
	U32
	U64
	Bool
	F8E4M3
	F8E5M2
	// GGML block-quantized types.
	Q4_0
	Q4_1
	Q5_0
	Q5_1
	Q8_0
	Q8_1
	Q2_K
	Q3_K
	Q4_K
	Q5_K
	Q6_K
	Q8_K
	IQ4_NL
	IQ4_XS
)

type dtypeInfo struct {
	name      string
	blockSize int // elements per block (1 for plain types)
	typeSize  int // bytes per block
	ggml      int // ggml_type id, -1 if none
}

var dtypes = map[DType]dtypeInfo{
	F32:    {"F32", 1, 4, 0},
	F16:    {"F16", 1, 2, 1},
	BF16:   {"BF16", 1, 2, 30},
	F64:    {"F64", 1, 8, 28},
	I8:     {"I8", 1, 1, 24},
	I16:    {"I16", 1, 2, 25},
	I32:    {"I32", 1, 4, 26},
	I64:    {"I64", 1, 8, 27},
	U8:     {"U8", 1, 1, -1},
	U16:    {"U16", 1, 2, -1},
	U32:    {"U32", 1, 4, -1},
	U64:    {"U64", 1, 8, -1},
	Bool:   {"BOOL", 1, 1, -1},
	F8E4M3: {"F8_E4M3", 1, 1, -1},
	F8E5M2: {"F8_E5M2", 1, 1, -1},
	Q4_0:   {"Q4_0", 32, 18, 2},
	Q4_1:   {"Q4_1", 32, 20, 3},
	Q5_0:   {"Q5_0", 32, 22, 6},
	Q5_1:   {"Q5_1", 32, 24, 7},
	Q8_0:   {"Q8_0", 32, 34, 8},
	Q8_1:   {"Q8_1", 32, 36, 9},
	Q2_K:   {"Q2_K", 256, 84, 10},
	Q3_K:   {"Q3_K", 256, 110, 11},
	Q4_K:   {"Q4_K", 256, 144, 12},
	Q5_K:   {"Q5_K", 256, 176, 13},
	Q6_K:   {"Q6_K", 256, 210, 14},
	Q8_K:   {"Q8_K", 256, 292, 15},
	IQ4_NL: {"IQ4_NL", 32, 18, 20},
	IQ4_XS: {"IQ4_XS", 256, 136, 23},
}

// String returns the conventional name (SafeTensors spelling for plain types,
// ggml spelling for block types).
func (d DType) String() string {
	if i, ok := dtypes[d]; ok {
		return i.name
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Valid reports whether d is a known type.
func (d DType) Valid() bool { _, ok := dtypes[d]; return ok }

// BlockSize is the number of elements in one block (1 for plain types).
func (d DType) BlockSize() int { return dtypes[d].blockSize }

// TypeSize is the number of bytes in one block (the element size for plain types).
func (d DType) TypeSize() int { return dtypes[d].typeSize }

// Quantized reports whether d is a GGML block type.
func (d DType) Quantized() bool { return d >= Q4_0 && d.Valid() }

// RowBytes returns the byte length of n elements of type d. It fails when n is
// not a multiple of the block size or the size overflows.
func (d DType) RowBytes(n int) (int, error) {
	info, ok := dtypes[d]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %d", int(d))
	}
	if n < 0 {
		return 0, fmt.Errorf("negative element count %d", n)
	}
	if n%info.blockSize != 0 {
		return 0, fmt.Errorf("%d elements of %s: not a multiple of the block size %d", n, info.name, info.blockSize)
	}
	hi, lo := bits.Mul64(uint64(n/info.blockSize), uint64(info.typeSize))
	if hi != 0 || lo > uint64(maxInt) {
		return 0, fmt.Errorf("%d elements of %s: byte size overflows", n, info.name)
	}
	return int(lo), nil
}

const maxInt = int(^uint(0) >> 1)

// ParseSafeTensorsDType maps a SafeTensors dtype string to a DType.
func ParseSafeTensorsDType(s string) (DType, bool) {
	switch s {
	case "F32":
		return F32, true
	case "F16":
		return F16, true
	case "BF16":
		return BF16, true
	case "F64":
		return F64, true
	case "I8":
		return I8, true
	case "I16":
		return I16, true
	case "I32":
		return I32, true
	case "I64":
		return I64, true
	case "U8":
		return U8, true
	case "U16":
		return U16, true
	case "U32":
		return U32, true
	case "U64":
		return U64, true
	case "BOOL":
		return Bool, true
	case "F8_E4M3":
		return F8E4M3, true
	case "F8_E5M2":
		return F8E5M2, true
	}
	return Invalid, false
}

// GGMLType returns ggml's numeric type id for d.
func (d DType) GGMLType() (uint32, bool) {
	i, ok := dtypes[d]
	if !ok || i.ggml < 0 {
		return 0, false
	}
	return uint32(i.ggml), true
}

// FromGGMLType maps a ggml type id to a DType.
func FromGGMLType(t uint32) (DType, bool) {
	for d, i := range dtypes {
		if i.ggml >= 0 && uint32(i.ggml) == t {
			return d, true
		}
	}
	return Invalid, false
}
