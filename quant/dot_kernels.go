package quant

import (
	"encoding/binary"
	"math"
)

// Portable dot-product kernels, one per weight type. The quantized ones follow
// ggml-cpu/quants.c (ggml_vec_dot_*_generic): integer sums inside a block,
// float scales applied per block. Lengths were validated by the caller.

// dot16 and dot32 are the integer inner products of quants.
func dot16(a, b *[16]int8) int {
	var s int
	for i := range a {
		s += int(a[i]) * int(b[i])
	}
	return s
}

func dot32(a, b *[32]int8) int {
	var s0, s1 int
	for i := 0; i < 32; i += 2 {
		s0 += int(a[i]) * int(b[i])
		s1 += int(a[i+1]) * int(b[i+1])
	}
	return s0 + s1
}

// q8s32 views 32 int8 quants (of a Q8_0 or Q8_1 block) as an array.
func q8s32(b []byte) *[32]int8 { return (*[32]int8)(i8s(b[:32])) }

// --- float weights, F32 activation ---
//
// Four partial sums (element i goes to sum i%4) keep the loop free of a
// single dependency chain; the result is (s0+s1)+(s2+s3).

func dotF32F32(w, act []byte, n int) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		a := (*[16]byte)(act[4*i:])
		x := (*[16]byte)(w[4*i:])
		s0 += float32(f32(x[0:]) * f32(a[0:]))
		s1 += float32(f32(x[4:]) * f32(a[4:]))
		s2 += float32(f32(x[8:]) * f32(a[8:]))
		s3 += float32(f32(x[12:]) * f32(a[12:]))
	}
	for ; i < n; i++ {
		s0, s1, s2, s3 = addLane(s0, s1, s2, s3, i, float32(f32(w[4*i:])*f32(act[4*i:])))
	}
	return (s0 + s1) + (s2 + s3)
}

// addLane adds p to partial sum i%4 (the tails of the float kernels).
func addLane(s0, s1, s2, s3 float32, i int, p float32) (float32, float32, float32, float32) {
	switch i % 4 {
	case 0:
		s0 += p
	case 1:
		s1 += p
	case 2:
		s2 += p
	default:
		s3 += p
	}
	return s0, s1, s2, s3
}

// u16 reads a little-endian uint16.
func u16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

func dotF16F32(w, act []byte, n int) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		a := (*[16]byte)(act[4*i:])
		x := (*[8]byte)(w[2*i:])
		s0 += float32(halfToF32(u16(x[0:])) * f32(a[0:]))
		s1 += float32(halfToF32(u16(x[2:])) * f32(a[4:]))
		s2 += float32(halfToF32(u16(x[4:])) * f32(a[8:]))
		s3 += float32(halfToF32(u16(x[6:])) * f32(a[12:]))
	}
	for ; i < n; i++ {
		s0, s1, s2, s3 = addLane(s0, s1, s2, s3, i, float32(halfToF32(u16(w[2*i:]))*f32(act[4*i:])))
	}
	return (s0 + s1) + (s2 + s3)
}

// bf16 widens a bfloat16 bit pattern.
func bf16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func dotBF16F32(w, act []byte, n int) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		a := (*[16]byte)(act[4*i:])
		x := (*[8]byte)(w[2*i:])
		s0 += float32(bf16(u16(x[0:])) * f32(a[0:]))
		s1 += float32(bf16(u16(x[2:])) * f32(a[4:]))
		s2 += float32(bf16(u16(x[4:])) * f32(a[8:]))
		s3 += float32(bf16(u16(x[6:])) * f32(a[12:]))
	}
	for ; i < n; i++ {
		s0, s1, s2, s3 = addLane(s0, s1, s2, s3, i, float32(bf16(u16(w[2*i:]))*f32(act[4*i:])))
	}
	return (s0 + s1) + (s2 + s3)
}

// --- 32-element blocks with a Q8_0 activation (d f16, qs[32]) ---

func dotQ4_0(w, act []byte, n int) float32 {
	var sum float32
	for i := range n / qk {
		x := (*[18]byte)(w[18*i:])
		y := (*[34]byte)(act[34*i:])
		qs := (*[16]byte)(x[2:])
		lo, hi := (*[16]int8)(i8s(y[2:18])), (*[16]int8)(i8s(y[18:34]))
		var s0, s1 int
		for j, b := range qs {
			s0 += (int(b&0x0f) - 8) * int(lo[j])
			s1 += (int(b>>4) - 8) * int(hi[j])
		}
		sum += float32(float32(s0+s1)*f16(x[0:])) * f16(y[0:])
	}
	return sum
}

func dotQ5_0(w, act []byte, n int) float32 {
	var sum float32
	for i := range n / qk {
		x := (*[22]byte)(w[22*i:])
		y := (*[34]byte)(act[34*i:])
		qh := binary.LittleEndian.Uint32(x[2:])
		qs := (*[16]byte)(x[6:])
		lo, hi := (*[16]int8)(i8s(y[2:18])), (*[16]int8)(i8s(y[18:34]))
		var s0, s1 int
		for j, b := range qs {
			h0 := int(qh>>j&1) << 4
			h1 := int(qh>>(j+16)&1) << 4
			s0 += ((int(b&0x0f) | h0) - 16) * int(lo[j])
			s1 += ((int(b>>4) | h1) - 16) * int(hi[j])
		}
		sum += float32(f16(x[0:])*f16(y[0:])) * float32(s0+s1)
	}
	return sum
}

func dotQ8_0(w, act []byte, n int) float32 {
	var sum float32
	for i := range n / qk {
		x := (*[34]byte)(w[34*i:])
		y := (*[34]byte)(act[34*i:])
		sumi := dot32(q8s32(x[2:]), q8s32(y[2:]))
		sum += float32(sumi) * float32(f16(x[0:])*f16(y[0:]))
	}
	return sum
}

func dotIQ4NL(w, act []byte, n int) float32 {
	var q [qk]int8
	var sum float32
	for i := range n / qk {
		x := (*[18]byte)(w[18*i:])
		y := (*[34]byte)(act[34*i:])
		unpackIQ4((*[16]byte)(x[2:]), &q)
		sumi := dot32(&q, q8s32(y[2:]))
		sum += float32(f16(y[0:])*f16(x[0:])) * float32(sumi)
	}
	return sum
}

// --- 32-element blocks with a Q8_1 activation (d, s = d*sum(qs), qs[32]) ---

func dotQ4_1(w, act []byte, n int) float32 {
	var q [qk]int8
	var sum float32
	for i := range n / qk {
		x := (*[20]byte)(w[20*i:])
		y := (*[36]byte)(act[36*i:])
		unpackQ4((*[16]byte)(x[4:]), 0, &q)
		sumi := dot32(&q, q8s32(y[4:]))
		sum += float32(float32(f16(x[0:])*f16(y[0:]))*float32(sumi)) + float32(f16(x[2:])*f16(y[2:]))
	}
	return sum
}

func dotQ5_1(w, act []byte, n int) float32 {
	var q [qk]int8
	var sum float32
	for i := range n / qk {
		x := (*[24]byte)(w[24*i:])
		y := (*[36]byte)(act[36*i:])
		unpackQ5(binary.LittleEndian.Uint32(x[4:]), (*[16]byte)(x[8:]), 0, &q)
		sumi := dot32(&q, q8s32(y[4:]))
		sum += float32(float32(f16(x[0:])*f16(y[0:]))*float32(sumi)) + float32(f16(x[2:])*f16(y[2:]))
	}
	return sum
}

// --- 256-element super-blocks with a Q8_K activation ---
//
// A Q8_K block is d (float32), qs[256], bsums[16] (int16 sums of 16 quants).

// q8K splits a Q8_K block.
func q8K(b *[292]byte) (d float32, qs *[qkK]int8) {
	return f32(b[0:]), (*[qkK]int8)(i8s(b[4:260]))
}

// bsum returns the j-th 16-element sum of a Q8_K block.
func bsum(b *[292]byte, j int) int { return int(int16(binary.LittleEndian.Uint16(b[260+2*j:]))) }

// dotSub16 returns Σ scale[j] * (q·q8 over elements 16j..16j+15).
func dotSub16(q, q8 *[qkK]int8, scale *[16]int8) int {
	var isum int
	for j := range 16 {
		isum += int(scale[j]) * dot16((*[16]int8)(q[16*j:]), (*[16]int8)(q8[16*j:]))
	}
	return isum
}

// dotSub32 returns Σ scale[j] * (q·q8 over elements 32j..32j+31).
func dotSub32(q, q8 *[qkK]int8, scale *[8]uint8) int {
	var isum int
	for j := range 8 {
		isum += int(scale[j]) * dot32((*[32]int8)(q[32*j:]), (*[32]int8)(q8[32*j:]))
	}
	return isum
}

func dotQ2K(w, act []byte, n int) float32 {
	var sum float32
	for i := range n / qkK {
		x := (*[84]byte)(w[84*i:])
		y := (*[292]byte)(act[292*i:])
		yd, q8 := q8K(y)
		sc := (*[16]byte)(x[0:])
		summs := 0
		for j, s := range sc {
			summs += bsum(y, j) * int(s>>4)
		}
		// Each 32 bytes of qs hold four groups of 32 (bits 0-1, 2-3, ...);
		// bytes 0-15 and 16-31 of a group are sub-blocks with own scales.
		isum := 0
		for half := range 2 {
			a := q8[128*half:]
			for sub := 0; sub < 32; sub += 16 {
				q2 := (*[16]byte)(x[16+32*half+sub:])
				a0, a1 := (*[16]int8)(a[sub:]), (*[16]int8)(a[32+sub:])
				a2, a3 := (*[16]int8)(a[64+sub:]), (*[16]int8)(a[96+sub:])
				var s0, s1, s2, s3 int
				for l, b := range q2 {
					s0 += int(b&3) * int(a0[l])
					s1 += int(b>>2&3) * int(a1[l])
					s2 += int(b>>4&3) * int(a2[l])
					s3 += int(b>>6) * int(a3[l])
				}
				sc4 := sc[8*half+sub/16:]
				isum += int(sc4[0]&0x0f)*s0 + int(sc4[2]&0x0f)*s1 + int(sc4[4]&0x0f)*s2 + int(sc4[6]&0x0f)*s3
			}
		}
		dall := yd * f16(x[80:])
		dmin := yd * f16(x[82:])
		sum += float32(dall*float32(isum)) - float32(dmin*float32(summs))
	}
	return sum
}

func dotQ3K(w, act []byte, n int) float32 {
	var q [qkK]int8
	var sc [16]int8
	var sum float32
	for i := range n / qkK {
		x := (*[110]byte)(w[110*i:])
		y := (*[292]byte)(act[292*i:])
		yd, q8 := q8K(y)
		unpackQ3K((*[32]byte)(x[0:]), (*[64]byte)(x[32:]), &q)
		scalesQ3K((*[12]byte)(x[96:]), &sc)
		isum := dotSub16(&q, q8, &sc)
		sum += float32(f16(x[108:])*yd) * float32(isum)
	}
	return sum
}

// affineK finishes a Q4_K/Q5_K super-block from isum = Σ sc·(q·q8):
// d*isum - dmin*Σ m·bsums.
// hdr is the block's first 4 bytes (the halves d and dmin).
func affineK(hdr []byte, y *[292]byte, isum int, m *[8]uint8) float32 {
	summs := 0
	for j := range 16 {
		summs += bsum(y, j) * int(m[j/2])
	}
	yd := f32(y[0:])
	d := f16(hdr[0:]) * yd
	dmin := f16(hdr[2:]) * yd
	return float32(d*float32(isum)) - float32(dmin*float32(summs))
}

func dotQ4K(w, act []byte, n int) float32 {
	var sum float32
	for i := range n / qkK {
		x := (*[144]byte)(w[144*i:])
		y := (*[292]byte)(act[292*i:])
		var sc, m [8]uint8
		scalesK4((*[kScl]byte)(x[4:]), &sc, &m)
		_, q8 := q8K(y)
		// Each 32 bytes of qs hold two groups of 32: low then high nibbles.
		isum := 0
		for j := range 4 {
			qs := (*[32]byte)(x[16+32*j:])
			lo := (*[32]int8)(q8[64*j:])
			hi := (*[32]int8)(q8[64*j+32:])
			var s0, s1 int
			for l, b := range qs {
				s0 += int(b&0x0f) * int(lo[l])
				s1 += int(b>>4) * int(hi[l])
			}
			isum += int(sc[2*j])*s0 + int(sc[2*j+1])*s1
		}
		sum += affineK(x[:4], y, isum, &m)
	}
	return sum
}

func dotQ5K(w, act []byte, n int) float32 {
	var q [qkK]int8
	var sum float32
	for i := range n / qkK {
		x := (*[176]byte)(w[176*i:])
		y := (*[292]byte)(act[292*i:])
		var sc, m [8]uint8
		scalesK4((*[kScl]byte)(x[4:]), &sc, &m)
		_, q8 := q8K(y)
		unpackQ5K((*[32]byte)(x[16:]), (*[128]byte)(x[48:]), &q)
		sum += affineK(x[:4], y, dotSub32(&q, q8, &sc), &m)
	}
	return sum
}

func dotQ6K(w, act []byte, n int) float32 {
	var q [qkK]int8
	var sum float32
	for i := range n / qkK {
		x := (*[210]byte)(w[210*i:])
		y := (*[292]byte)(act[292*i:])
		yd, q8 := q8K(y)
		unpackQ6K((*[128]byte)(x[0:]), (*[64]byte)(x[128:]), &q)
		isum := dotSub16(&q, q8, (*[16]int8)(i8s(x[192:208])))
		sum += float32(f16(x[208:])*yd) * float32(isum)
	}
	return sum
}

func dotIQ4XS(w, act []byte, n int) float32 {
	var q [qk]int8
	var sum float32
	for i := range n / qkK {
		x := (*[136]byte)(w[136*i:])
		y := (*[292]byte)(act[292*i:])
		yd, q8 := q8K(y)
		d4d8 := f16(x[0:]) * yd
		sh := binary.LittleEndian.Uint16(x[2:])
		for ib := range 8 {
			ls := int(x[4+ib/2]>>(4*(ib%2))&0x0f) | int(sh>>(2*ib)&3)<<4
			unpackIQ4((*[16]byte)(x[8+16*ib:]), &q)
			sumi := dot32(&q, (*[32]int8)(q8[32*ib:]))
			sum += float32(d4d8*float32(ls-32)) * float32(sumi)
		}
	}
	return sum
}
