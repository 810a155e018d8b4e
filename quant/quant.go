package quant

// Byte-level helpers shared by every format.
//
// Go may fuse x*y+z into one FMA (GOAMD64=v3, arm64); C as ggml builds it
// rounds the product first. Every product that feeds an addition is therefore
// wrapped in float32(...), which the Go spec defines to round and not fuse.

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/apr-llm/apr/tensor"
)

// Block sizes in elements.
const (
	qk   = 32  // legacy formats (Q4_0 ... Q8_1) and IQ4_NL
	qkK  = 256 // K-quant super-blocks and IQ4_XS
	kScl = 12  // bytes of packed 6-bit scales in Q4_K/Q5_K
)

// kvaluesIQ4NL is ggml's non-linear 4-bit code book (kvalues_iq4nl).
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// f16 reads a little-endian IEEE half at b[0:2] as float32.
func f16(b []byte) float32 { return halfToF32(binary.LittleEndian.Uint16(b)) }

// halfToF32 widens an IEEE half exactly, like tensor.F16ToF32, but small
// enough to inline into the F16 kernels and free of branches (the selects
// compile to conditional moves).
func halfToF32(h uint16) float32 {
	m := uint32(h & 0x7fff)
	bits := m<<13 + 0x38000000 // normal: rebias the exponent by 127-15
	if m >= 0x7c00 {           // inf, NaN: exponent all ones
		bits += 0x38000000
	}
	sub := math.Float32bits(float32(m) * 0x1p-24) // zero, subnormal: exact
	if m < 0x0400 {
		bits = sub
	}
	return math.Float32frombits(bits | uint32(h&0x8000)<<16)
}

// putF16 writes f as a little-endian IEEE half (round to nearest even).
func putF16(b []byte, f float32) { binary.LittleEndian.PutUint16(b, tensor.F32ToF16(f)) }

// f32 reads a little-endian float32 at b[0:4].
func f32(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// putF32 writes a little-endian float32.
func putF32(b []byte, f float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(f)) }

// fabs is fabsf.
func fabs(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// sqrt32 is sqrtf (a correctly rounded double square root rounds to the
// correctly rounded float one).
func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) }

// nearestInt is ggml's nearest_int: round to nearest, ties to even, through
// the 1.5*2^23 trick (valid for |f| <= 4194303, like the C code). The
// conversion keeps an inlined caller's product from fusing into the add.
func nearestInt(f float32) int {
	v := float32(f) + 12582912
	return int(math.Float32bits(v)&0x007fffff) - 0x00400000
}

// checkLen validates that nbytes is exactly the size of n elements of dt
// (n a whole number of blocks).
func checkLen(op string, dt tensor.DType, n, nbytes int) error {
	if !dt.Valid() {
		return fmt.Errorf("quant: %s: unknown dtype %v", op, dt)
	}
	want, err := dt.RowBytes(n)
	if err != nil {
		return fmt.Errorf("quant: %s: %w", op, err)
	}
	if nbytes != want {
		return fmt.Errorf("quant: %s: %d elements of %v need %d bytes, have %d", op, n, dt, want, nbytes)
	}
	return nil
}

// i8s views bytes as signed bytes (the int8 quants of Q8 blocks).
func i8s(b []byte) []int8 {
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}
