package quant

import (
	"encoding/binary"
	"fmt"

	"github.com/apr-llm/apr/tensor"
)

// RowDequantizer decodes whole blocks of one type: len(dst) elements (a
// multiple of the block size) from the first bytes of src. It does not
// validate lengths; a short src panics. Resolve it once with
// DequantizeRowFunc and call it per row without allocation.
type RowDequantizer func(src []byte, dst []float32)

var dequantizers = map[tensor.DType]RowDequantizer{
	tensor.F32:    dequantF32,
	tensor.F16:    dequantF16,
	tensor.BF16:   dequantBF16,
	tensor.Q4_0:   dequantQ4_0,
	tensor.Q4_1:   dequantQ4_1,
	tensor.Q5_0:   dequantQ5_0,
	tensor.Q5_1:   dequantQ5_1,
	tensor.Q8_0:   dequantQ8_0,
	tensor.Q8_1:   dequantQ8_1,
	tensor.Q2_K:   dequantQ2K,
	tensor.Q3_K:   dequantQ3K,
	tensor.Q4_K:   dequantQ4K,
	tensor.Q5_K:   dequantQ5K,
	tensor.Q6_K:   dequantQ6K,
	tensor.Q8_K:   dequantQ8K,
	tensor.IQ4_NL: dequantIQ4NL,
	tensor.IQ4_XS: dequantIQ4XS,
}

// DequantizeRowFunc returns the unchecked row decoder of dt, for callers that
// validated sizes once (for example per tensor) and decode row by row.
func DequantizeRowFunc(dt tensor.DType) (RowDequantizer, error) {
	f, ok := dequantizers[dt]
	if !ok {
		return nil, fmt.Errorf("quant: dequantize: unsupported dtype %v", dt)
	}
	return f, nil
}

// Dequantize decodes len(dst) elements of type dt from src into dst, as
// ggml's to_float does (bit-exact). len(dst) must be a whole number of
// blocks and src must hold exactly their bytes.
func Dequantize(dt tensor.DType, src []byte, dst []float32) error {
	f, err := DequantizeRowFunc(dt)
	if err != nil {
		return err
	}
	if err := checkLen("dequantize", dt, len(dst), len(src)); err != nil {
		return err
	}
	f(src, dst)
	return nil
}

func dequantF32(src []byte, dst []float32) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = f32(src[4*i:])
	}
}

func dequantF16(src []byte, dst []float32) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func dequantBF16(src []byte, dst []float32) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = tensor.BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// scaleInts writes y[j] = float(q[j])*d (dequantize_row_q4_0 and kin).
func scaleInts(q []int8, d float32, y []float32) {
	y = y[:len(q)]
	for j, v := range q {
		y[j] = float32(v) * d
	}
}

// scaleIntsMin writes y[j] = float(q[j])*d + m (Q4_1, Q5_1).
func scaleIntsMin(q []int8, d, m float32, y []float32) {
	y = y[:len(q)]
	for j, v := range q {
		y[j] = float32(float32(v)*d) + m
	}
}

// scaleIntsSubMin writes y[j] = d*float(q[j]) - m (the K-quants with mins).
func scaleIntsSubMin(q []int8, d, m float32, y []float32) {
	y = y[:len(q)]
	for j, v := range q {
		y[j] = float32(d*float32(v)) - m
	}
}

func dequantQ4_0(src []byte, dst []float32) {
	var q [qk]int8
	for i := range len(dst) / qk {
		b := (*[18]byte)(src[18*i:])
		unpackQ4((*[16]byte)(b[2:]), 8, &q)
		scaleInts(q[:], f16(b[0:]), dst[qk*i:])
	}
}

func dequantQ4_1(src []byte, dst []float32) {
	var q [qk]int8
	for i := range len(dst) / qk {
		b := (*[20]byte)(src[20*i:])
		unpackQ4((*[16]byte)(b[4:]), 0, &q)
		scaleIntsMin(q[:], f16(b[0:]), f16(b[2:]), dst[qk*i:])
	}
}

func dequantQ5_0(src []byte, dst []float32) {
	var q [qk]int8
	for i := range len(dst) / qk {
		b := (*[22]byte)(src[22*i:])
		unpackQ5(binary.LittleEndian.Uint32(b[2:]), (*[16]byte)(b[6:]), 16, &q)
		scaleInts(q[:], f16(b[0:]), dst[qk*i:])
	}
}

func dequantQ5_1(src []byte, dst []float32) {
	var q [qk]int8
	for i := range len(dst) / qk {
		b := (*[24]byte)(src[24*i:])
		unpackQ5(binary.LittleEndian.Uint32(b[4:]), (*[16]byte)(b[8:]), 0, &q)
		scaleIntsMin(q[:], f16(b[0:]), f16(b[2:]), dst[qk*i:])
	}
}

func dequantQ8_0(src []byte, dst []float32) {
	for i := range len(dst) / qk {
		b := (*[34]byte)(src[34*i:])
		scaleInts(i8s(b[2:34]), f16(b[0:]), dst[qk*i:])
	}
}

func dequantQ8_1(src []byte, dst []float32) {
	for i := range len(dst) / qk {
		b := (*[36]byte)(src[36*i:])
		scaleInts(i8s(b[4:36]), f16(b[0:]), dst[qk*i:])
	}
}

func dequantIQ4NL(src []byte, dst []float32) {
	var q [qk]int8
	for i := range len(dst) / qk {
		b := (*[18]byte)(src[18*i:])
		unpackIQ4((*[16]byte)(b[2:]), &q)
		scaleInts(q[:], f16(b[0:]), dst[qk*i:])
	}
}

func dequantQ2K(src []byte, dst []float32) {
	var q [qkK]int8
	for i := range len(dst) / qkK {
		b := (*[84]byte)(src[84*i:])
		unpackQ2K((*[64]byte)(b[16:]), &q)
		d, dmin := f16(b[80:]), f16(b[82:])
		y := dst[qkK*i:]
		for j, sc := range b[:16] {
			dl := d * float32(sc&0x0f)
			ml := dmin * float32(sc>>4)
			scaleIntsSubMin(q[16*j:16*j+16], dl, ml, y[16*j:])
		}
	}
}

func dequantQ3K(src []byte, dst []float32) {
	var q [qkK]int8
	var sc [16]int8
	for i := range len(dst) / qkK {
		b := (*[110]byte)(src[110*i:])
		unpackQ3K((*[32]byte)(b[0:]), (*[64]byte)(b[32:]), &q)
		scalesQ3K((*[12]byte)(b[96:]), &sc)
		d := f16(b[108:])
		y := dst[qkK*i:]
		for j, s := range sc {
			scaleInts(q[16*j:16*j+16], d*float32(s), y[16*j:])
		}
	}
}

func dequantQ4K(src []byte, dst []float32) {
	var q [qkK]int8
	var sc, m [8]uint8
	for i := range len(dst) / qkK {
		b := (*[144]byte)(src[144*i:])
		unpackQ4K((*[128]byte)(b[16:]), &q)
		scalesK4((*[kScl]byte)(b[4:]), &sc, &m)
		d, dmin := f16(b[0:]), f16(b[2:])
		y := dst[qkK*i:]
		for j := range 8 {
			scaleIntsSubMin(q[32*j:32*j+32], d*float32(sc[j]), dmin*float32(m[j]), y[32*j:])
		}
	}
}

func dequantQ5K(src []byte, dst []float32) {
	var q [qkK]int8
	var sc, m [8]uint8
	for i := range len(dst) / qkK {
		b := (*[176]byte)(src[176*i:])
		unpackQ5K((*[32]byte)(b[16:]), (*[128]byte)(b[48:]), &q)
		scalesK4((*[kScl]byte)(b[4:]), &sc, &m)
		d, dmin := f16(b[0:]), f16(b[2:])
		y := dst[qkK*i:]
		for j := range 8 {
			scaleIntsSubMin(q[32*j:32*j+32], d*float32(sc[j]), dmin*float32(m[j]), y[32*j:])
		}
	}
}

func dequantQ6K(src []byte, dst []float32) {
	var q [qkK]int8
	for i := range len(dst) / qkK {
		b := (*[210]byte)(src[210*i:])
		unpackQ6K((*[128]byte)(b[0:]), (*[64]byte)(b[128:]), &q)
		d := f16(b[208:])
		y := dst[qkK*i:]
		for j, s := range b[192:208] {
			scaleInts(q[16*j:16*j+16], d*float32(int8(s)), y[16*j:])
		}
	}
}

func dequantQ8K(src []byte, dst []float32) {
	for i := range len(dst) / qkK {
		b := (*[292]byte)(src[292*i:])
		scaleInts(i8s(b[4:260]), f32(b[0:]), dst[qkK*i:])
	}
}

func dequantIQ4XS(src []byte, dst []float32) {
	var q [qk]int8
	for i := range len(dst) / qkK {
		b := (*[136]byte)(src[136*i:])
		d := f16(b[0:])
		sh := binary.LittleEndian.Uint16(b[2:])
		y := dst[qkK*i:]
		for ib := range 8 {
			ls := int(b[4+ib/2]>>(4*(ib%2))&0x0f) | int(sh>>(2*ib)&3)<<4
			unpackIQ4((*[16]byte)(b[8+16*ib:]), &q)
			scaleInts(q[:], d*float32(ls-32), y[32*ib:])
		}
	}
}
