package quant

import "encoding/binary"

// Block unpackers shared by dequantization and the dot products. Each turns
// the packed quants of one block into plain small integers, in element order.

// unpackQ4 splits 16 bytes of nibbles: low nibbles are elements 0..15, high
// nibbles 16..31 (Q4_0, Q4_1). off is subtracted from every value.
func unpackQ4(qs *[16]byte, off int8, q *[32]int8) {
	for j, b := range qs {
		q[j] = int8(b&0x0f) - off
		q[j+16] = int8(b>>4) - off
	}
}

// unpackQ5 is unpackQ4 with the fifth bits of qh (bit j for element j), as
// in Q5_0 and Q5_1.
func unpackQ5(qh uint32, qs *[16]byte, off int8, q *[32]int8) {
	for j, b := range qs {
		h0 := byte(qh>>j<<4) & 0x10
		h1 := byte(qh>>(j+12)) & 0x10
		q[j] = int8(b&0x0f|h0) - off
		q[j+16] = int8(b>>4|h1) - off
	}
}

// unpackIQ4 maps nibbles through the IQ4_NL code book.
func unpackIQ4(qs *[16]byte, q *[32]int8) {
	for j, b := range qs {
		q[j] = kvaluesIQ4NL[b&0x0f]
		q[j+16] = kvaluesIQ4NL[b>>4]
	}
}

// scaleMinK4 is get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K or
// Q5_K super-block.
func scaleMinK4(j int, s *[kScl]byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0x0f | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// scalesK4 unpacks the eight scales and eight mins of a Q4_K/Q5_K block.
func scalesK4(s *[kScl]byte, sc, m *[8]uint8) {
	for j := range 8 {
		sc[j], m[j] = scaleMinK4(j, s)
	}
}

// scalesQ3K unpacks the sixteen 6-bit scales of a Q3_K block, already
// shifted to -32..31.
func scalesQ3K(s *[12]byte, out *[16]int8) {
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	a0 := binary.LittleEndian.Uint32(s[0:])
	a1 := binary.LittleEndian.Uint32(s[4:])
	tmp := binary.LittleEndian.Uint32(s[8:])
	w := [4]uint32{
		a0&kmask2 | (tmp>>0&kmask1)<<4,
		a1&kmask2 | (tmp>>2&kmask1)<<4,
		a0>>4&kmask2 | (tmp>>4&kmask1)<<4,
		a1>>4&kmask2 | (tmp>>6&kmask1)<<4,
	}
	for i, v := range w {
		for k := range 4 {
			out[4*i+k] = int8(byte(v>>(8*k))) - 32
		}
	}
}

// unpackQ2K writes the 256 2-bit quants (0..3) of a Q2_K block.
func unpackQ2K(qs *[64]byte, q *[qkK]int8) {
	for half := range 2 {
		src := (*[32]byte)(qs[32*half:])
		dst := q[128*half:]
		for shift := range 4 {
			out := (*[32]int8)(dst[32*shift:])
			for l, b := range src {
				out[l] = int8(b >> (2 * shift) & 3)
			}
		}
	}
}

// unpackQ3K writes the 256 3-bit quants (-4..3) of a Q3_K block.
func unpackQ3K(hmask *[32]byte, qs *[64]byte, q *[qkK]int8) {
	m := byte(1)
	for half := range 2 {
		src := (*[32]byte)(qs[32*half:])
		dst := q[128*half:]
		for shift := range 4 {
			out := (*[32]int8)(dst[32*shift:])
			for l, b := range src {
				v := int8(b >> (2 * shift) & 3)
				if hmask[l]&m == 0 {
					v -= 4
				}
				out[l] = v
			}
			m <<= 1
		}
	}
}

// unpackQ4K writes the 256 4-bit quants (0..15) of a Q4_K block.
func unpackQ4K(qs *[128]byte, q *[qkK]int8) {
	for j := range 4 {
		src := (*[32]byte)(qs[32*j:])
		lo := (*[32]int8)(q[64*j:])
		hi := (*[32]int8)(q[64*j+32:])
		for l, b := range src {
			lo[l] = int8(b & 0x0f)
			hi[l] = int8(b >> 4)
		}
	}
}

// unpackQ5K writes the 256 5-bit quants (0..31) of a Q5_K block.
func unpackQ5K(qh *[32]byte, qs *[128]byte, q *[qkK]int8) {
	for j := range 4 {
		src := (*[32]byte)(qs[32*j:])
		lo := (*[32]int8)(q[64*j:])
		hi := (*[32]int8)(q[64*j+32:])
		for l, b := range src {
			h := qh[l] >> (2 * j)
			lo[l] = int8(b&0x0f | (h&1)<<4)
			hi[l] = int8(b>>4 | (h&2)<<3)
		}
	}
}

// unpackQ6K writes the 256 6-bit quants (-32..31) of a Q6_K block.
func unpackQ6K(ql *[128]byte, qh *[64]byte, q *[qkK]int8) {
	for half := range 2 {
		l4 := (*[64]byte)(ql[64*half:])
		h := (*[32]byte)(qh[32*half:])
		a := (*[128]int8)(q[128*half:])
		for l := range 32 {
			hb := h[l]
			a[l+0] = int8(l4[l]&0x0f|(hb>>0&3)<<4) - 32
			a[l+32] = int8(l4[l+32]&0x0f|(hb>>2&3)<<4) - 32
			a[l+64] = int8(l4[l]>>4|(hb>>4&3)<<4) - 32
			a[l+96] = int8(l4[l+32]>>4|(hb>>6&3)<<4) - 32
		}
	}
}
