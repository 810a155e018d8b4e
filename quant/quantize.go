package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/apr-llm/apr/tensor"
)

// rowQuantizer encodes len(src) elements (whole blocks) into dst, which
// holds exactly their bytes.
type rowQuantizer func(src []float32, dst []byte)

var quantizers = map[tensor.DType]rowQuantizer{
	tensor.F32:    quantF32,
	tensor.F16:    quantF16,
	tensor.BF16:   quantBF16,
	tensor.Q4_0:   quantQ4_0,
	tensor.Q4_1:   quantQ4_1,
	tensor.Q5_0:   quantQ5_0,
	tensor.Q5_1:   quantQ5_1,
	tensor.Q8_0:   quantQ8_0,
	tensor.Q8_1:   quantQ8_1,
	tensor.Q2_K:   quantQ2K,
	tensor.Q3_K:   quantQ3K,
	tensor.Q4_K:   quantQ4K,
	tensor.Q5_K:   quantQ5K,
	tensor.Q6_K:   quantQ6K,
	tensor.Q8_K:   quantQ8K,
	tensor.IQ4_NL: quantIQ4NL,
	tensor.IQ4_XS: quantIQ4XS,
}

// Quantize encodes src as type dt into dst, byte for byte as
// ggml_quantize_chunk does without an importance matrix (what llama-quantize
// writes). For Q8_1 and Q8_K it is quantize_row_q8_1_ref and
// quantize_row_q8_K_ref. len(src) must be a whole number of blocks and dst
// must hold exactly their bytes. Every block is independent, so rows may be
// passed one at a time or all at once.
func Quantize(dt tensor.DType, src []float32, dst []byte) error {
	f, ok := quantizers[dt]
	if !ok {
		return fmt.Errorf("quant: quantize: unsupported dtype %v", dt)
	}
	if err := checkLen("quantize", dt, len(src), len(dst)); err != nil {
		return err
	}
	f(src, dst)
	return nil
}

func quantF32(src []float32, dst []byte) {
	for i, v := range src {
		putF32(dst[4*i:], v)
	}
}

func quantF16(src []float32, dst []byte) {
	for i, v := range src {
		putF16(dst[2*i:], v)
	}
}

func quantBF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], tensor.F32ToBF16(v))
	}
}

// truncI8 is C's (int8_t)f on x86: truncate toward zero to 32 bits, keep the
// low byte. Out-of-range and NaN inputs give some value, never a panic.
func truncI8(f float32) int { return int(int8(int32(f))) }

// roundI8 is C's (int8_t)roundf(f): round half away from zero.
func roundI8(f float32) int8 { return int8(int32(math.Round(float64(f)))) }

// absMax returns the largest |x| and the signed value that has it (the first
// one on ties), as the Q4_0/Q5_0 and K-quant searches do.
func absMax(x []float32) (amax, signed float32) {
	for _, v := range x {
		if a := fabs(v); a > amax {
			amax, signed = a, v
		}
	}
	return amax, signed
}

// minMax returns the smallest and largest element (Q4_1, Q5_1).
func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// inverse is ggml's `d ? 1.0f/d : 0.0f`.
func inverse(d float32) float32 {
	if d != 0 {
		return 1 / d
	}
	return 0
}

// packQ5High packs the fifth bits of 32 quants into the little-endian qh word.
func packQ5High(q *[qk]uint8, qh []byte) {
	var h uint32
	for j, v := range q {
		h |= uint32(v>>4&1) << j
	}
	binary.LittleEndian.PutUint32(qh, h)
}

// packNibbles writes qs[j] = q[j] | q[j+16]<<4 (low 4 bits of each).
func packNibbles(q *[qk]uint8, qs []byte) {
	qs = qs[:16]
	for j := range qs {
		qs[j] = q[j]&0x0f | (q[j+16]&0x0f)<<4
	}
}

// quantSymmetric is quantize_row_q4_0_ref / q5_0_ref for one block: the
// value of largest magnitude maps to -half (half = 8 or 16), then
// q = min(2*half-1, (int8)(x*id + half + 0.5)).
func quantSymmetric(x []float32, half float32, q *[qk]uint8) (d float32) {
	_, xmax := absMax(x[:qk])
	d = xmax / -half
	id := inverse(d)
	top := 2*int(half) - 1
	for j, v := range x[:qk] {
		q[j] = uint8(min(top, truncI8(float32(v*id)+(half+0.5))))
	}
	return d
}

// quantAffine is quantize_row_q4_1_ref / q5_1_ref for one block:
// d = (max-min)/nmax, q = (x-min)*id + 0.5 truncated.
func quantAffine(x []float32, nmax int, q *[qk]uint8) (d, lo float32) {
	lo, hi := minMax(x[:qk])
	d = (hi - lo) / float32(nmax)
	id := inverse(d)
	for j, v := range x[:qk] {
		l := float32((v - lo) * id)
		if nmax == 15 {
			q[j] = uint8(min(15, truncI8(l+0.5)))
		} else {
			q[j] = uint8(int32(l + 0.5)) // q5_1_ref has no clamp
		}
	}
	return d, lo
}

func quantQ4_0(src []float32, dst []byte) {
	var q [qk]uint8
	for i := range len(src) / qk {
		b := dst[18*i : 18*i+18]
		putF16(b[0:], quantSymmetric(src[qk*i:], 8, &q))
		packNibbles(&q, b[2:])
	}
}

func quantQ5_0(src []float32, dst []byte) {
	var q [qk]uint8
	for i := range len(src) / qk {
		b := dst[22*i : 22*i+22]
		putF16(b[0:], quantSymmetric(src[qk*i:], 16, &q))
		packQ5High(&q, b[2:])
		packNibbles(&q, b[6:])
	}
}

func quantQ4_1(src []float32, dst []byte) {
	var q [qk]uint8
	for i := range len(src) / qk {
		b := dst[20*i : 20*i+20]
		d, m := quantAffine(src[qk*i:], 15, &q)
		putF16(b[0:], d)
		putF16(b[2:], m)
		packNibbles(&q, b[4:])
	}
}

func quantQ5_1(src []float32, dst []byte) {
	var q [qk]uint8
	for i := range len(src) / qk {
		b := dst[24*i : 24*i+24]
		d, m := quantAffine(src[qk*i:], 31, &q)
		putF16(b[0:], d)
		putF16(b[2:], m)
		packQ5High(&q, b[4:])
		packNibbles(&q, b[8:])
	}
}

// quantQ8Ref is quantize_row_q8_0_ref for one block: d = amax/127,
// q = roundf(x/d). It returns d and the sum of the quants.
func quantQ8Ref(x []float32, qs []byte) (d float32, sum int) {
	var amax float32
	for _, v := range x[:qk] {
		amax = max(amax, fabs(v))
	}
	d = amax / 127
	id := inverse(d)
	qs = qs[:qk]
	for j, v := range x[:qk] {
		q := roundI8(v * id)
		qs[j] = byte(q)
		sum += int(q)
	}
	return d, sum
}

func quantQ8_0(src []float32, dst []byte) {
	for i := range len(src) / qk {
		b := dst[34*i : 34*i+34]
		d, _ := quantQ8Ref(src[qk*i:], b[2:])
		putF16(b[0:], d)
	}
}

func quantQ8_1(src []float32, dst []byte) {
	for i := range len(src) / qk {
		b := dst[36*i : 36*i+36]
		d, sum := quantQ8Ref(src[qk*i:], b[4:])
		putF16(b[0:], d)
		putF16(b[2:], float32(sum)*d)
	}
}

// quantQ8K is quantize_row_q8_K_ref: one float32 scale per 256 values,
// q = nearest_int(-127/max * x), and the sums of each 16 quants.
func quantQ8K(src []float32, dst []byte) {
	for i := range len(src) / qkK {
		x := src[qkK*i : qkK*i+qkK]
		b := (*[292]byte)(dst[292*i:])
		amax, xmax := absMax(x)
		if amax == 0 {
			clear(b[:])
			continue
		}
		iscale := -127 / xmax
		for j, v := range x {
			b[4+j] = byte(int8(min(127, nearestInt(iscale*v))))
		}
		for j := range 16 {
			sum := 0
			for _, q := range i8s(b[4+16*j : 4+16*j+16]) {
				sum += int(q)
			}
			binary.LittleEndian.PutUint16(b[260+2*j:], uint16(int16(sum)))
		}
		putF32(b[0:], 1/iscale)
	}
}
