//go:build !purego

package quant

import (
	"unsafe"

	"github.com/apr-llm/apr/tensor"
)

// hasVNNI selects the tiled kernels of gemm_amd64.s: the CPU features of
// the VNNI row kernels (hasAVX512VNNI), whose sums the tiles reproduce; a
// variable of its own so tests can install the AVX2 tiles alone.
var hasVNNI = hasAVX512VNNI

// A tile kernel multiplies tileRows weight rows (stride bytes apart, nb
// blocks each) with groups packed groups at act, writing out[c*ostride+r]
// for the groups' columns c and the rows r < tileRows. side is the rows'
// side table: their block scales as float32 and, for the K-quants, their
// sub-block scales widened, block by block.
type tileKernel func(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)

//go:noescape
func q8_0TileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)

//go:noescape
func q5_0TileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)

// floatTileAVX512 runs one slice of nb blocks of four F16 or BF16 rows
// (see gemm_amd64.s): groups gstride bytes apart, the accumulators kept
// in acc between slices (2 KiB per group).
//
//go:noescape
func floatTileAVX512(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int, acc *float32, gstride, flags int)

//go:noescape
func q4KTileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)

//go:noescape
func q6KTileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)

//go:noescape
func q8_0TileAVX2(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)

//go:noescape
func q5_0TileAVX2(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)

func init() { installTilers(hasVNNI, hasAVX2) }

// installTilers sets the tiled kernels for a CPU with AVX-512 VNNI (vnni)
// or only AVX2 (avx2): without VNNI, the 32-element block types get AVX2
// tiles and the other types keep their row kernels.
func installTilers(vnni, avx2 bool) {
	clear(tilers[:])
	fastActivation = [tensor.IQ4_XS + 1]func([]float32, []byte){}
	switch {
	case vnni:
		fastActivation[tensor.Q8_0] = actQ8_0Fast
		fastActivation[tensor.Q8_K] = actQ8KFast
		tilers[tensor.Q8_0] = asmTiler(q8_0TileVNNI, qk, 34, pack32Bytes, 16+4*32, side32(34), pack32)
		tilers[tensor.Q5_0] = asmTiler(q5_0TileVNNI, qk, 22, pack32Bytes, 16+4*32, side32(22), pack32)
		tilers[tensor.Q4_K] = asmTiler(q4KTileVNNI, qkK, 144, packKBytes, sideQ4KBytes, sideQ4K, packK)
		tilers[tensor.Q6_K] = asmTiler(q6KTileVNNI, qkK, 210, packKBytes, sideQ6KBytes, sideQ6K, packK)
		tilers[tensor.BF16] = floatTiler(0)
		tilers[tensor.F16] = floatTiler(4)
	case avx2:
		tilers[tensor.Q8_0] = asmTiler(q8_0TileAVX2, qk, 34, pack32Bytes, 16, side32(34), pack32)
		tilers[tensor.Q5_0] = asmTiler(q5_0TileAVX2, qk, 22, pack32Bytes, 16, side32(22), pack32)
	}
}

// asmTiler wraps an assembly tile kernel: side, if not nil, fills the side
// table of tileRows weight rows, sideBytes per block.
func asmTiler(k tileKernel, blockElems, blockBytes, packBytes, sideBytes int,
	side func(dst, w []byte, stride, nb int), pack func([]byte, *[tileCols][]byte)) *tiler {
	return &tiler{
		blockElems: blockElems,
		blockBytes: blockBytes,
		packBytes:  packBytes,
		maxBlocks:  tileSideBytes / max(sideBytes, 1),
		pack:       pack,
		mul: func(w []byte, stride int, act []byte, groups, nb int, out []float32, ostride int, tab []byte) {
			_ = tab[tileSideBytes-1]
			_ = w[(tileRows-1)*stride+nb*blockBytes-1]
			_ = act[groups*nb*packBytes-1]
			_ = out[(groups*tileCols-1)*ostride+tileRows-1]
			if side != nil {
				side(tab[:nb*sideBytes], w, stride, nb)
			}
			k(&w[0], stride, &tab[0], &act[0], groups, nb, &out[0], ostride)
		},
	}
}

// Float tiles take the rows in slices of sliceBlocks blocks of 32: the
// four rows' slice, widened to float32 (32 KiB), stays in L1.
const sliceBlocks = 64

// floatTiler is the tiler of BF16 (kind 0) or F16 (kind 4) weights: the
// kernel runs over the rows slice by slice, the accumulators of a sweep's
// groups (2 KiB each, at most tileBlockBytes/(sliceBlocks*packF32Bytes)
// groups when a row has several slices) kept in the side table after the
// widened slice.
func floatTiler(kind int) *tiler {
	const wideBytes = sliceBlocks * tileRows * qk * 4
	return &tiler{
		blockElems: qk,
		blockBytes: 2 * qk,
		packBytes:  packF32Bytes,
		maxBlocks:  1 << 20,
		pack:       packF32,
		mul: func(w []byte, stride int, act []byte, groups, nb int, out []float32, ostride int, side []byte) {
			_ = w[(tileRows-1)*stride+nb*2*qk-1]
			_ = act[groups*nb*packF32Bytes-1]
			_ = out[(groups*tileCols-1)*ostride+tileRows-1]
			acc := f32s(side[wideBytes:])
			if nb > sliceBlocks {
				_ = acc[groups*512-1] // 2 KiB per group
			}
			for s0 := 0; s0 < nb; s0 += sliceBlocks {
				n := min(sliceBlocks, nb-s0)
				flags := kind
				if s0 == 0 {
					flags |= 1
				}
				if s0+n == nb {
					flags |= 2
				}
				floatTileAVX512(&w[s0*2*qk], stride, &side[0], &act[s0*packF32Bytes], groups, n, &out[0], ostride, &acc[0], nb*packF32Bytes, flags)
			}
		},
	}
}

// f32s views b (4-byte aligned where it is read by kernels) as float32.
func f32s(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// i32s views b as int32.
func i32s(b []byte) []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

//go:noescape
func f16Scales4(w *byte, stride, blockBytes, nb int, dst *float32)

// side32 returns the side table of 32-element blocks of blockBytes bytes
// that start with their half scale: per block, the rows' scales (the VNNI
// kernels write their unpacked weights after them).
func side32(blockBytes int) func(dst, w []byte, stride, nb int) {
	return func(dst, w []byte, stride, nb int) {
		sc := f32s(dst)
		_, _ = w[(tileRows-1)*stride+(nb-1)*blockBytes+1], sc[tileRows*nb-1]
		f16Scales4(&w[0], stride, blockBytes, nb, &sc[0])
	}
}

//go:noescape
func actQ8_0AVX512(x *float32, dst *byte, nb int)

//go:noescape
func actQ8KAVX512(x *float32, dst *byte, nb int)

// actQ8KFast is quantQ8K (bit-identical for finite inputs) in AVX-512.
func actQ8KFast(x []float32, dst []byte) {
	nb := len(x) / qkK
	if nb == 0 {
		return
	}
	_ = dst[292*nb-1]
	actQ8KAVX512(&x[0], &dst[0], nb)
}

// actQ8_0Fast is actQ8_0 (bit-identical for finite inputs) in AVX-512.
func actQ8_0Fast(x []float32, dst []byte) {
	nb := len(x) / qk
	if nb == 0 {
		return
	}
	_ = dst[34*nb-1]
	actQ8_0AVX512(&x[0], &dst[0], nb)
}

// pair repeats a 16-bit value in both halves of an int32 (a VPDPWSSD
// operand broadcast from memory).
func pair(v int16) int32 { return int32(uint32(uint16(v)) * 0x10001) }

// sideQ4KBytes is a Q4_K block's side table: 224 bytes from sideQ4K, then
// the four rows' quants, unpacked by the kernel.
const sideQ4KBytes = 224 + tileRows*qkK

// sideQ4K writes, per Q4_K block: each row's d and dmin as float32, its
// eight sub-block scales as pairs, its eight mins as int16.
func sideQ4K(dst, w []byte, stride, nb int) {
	for b := range nb {
		t := dst[sideQ4KBytes*b : sideQ4KBytes*b+224]
		f, s := f32s(t[:32]), i32s(t[32:160])
		for r := range tileRows {
			x := (*[144]byte)(w[r*stride+144*b:])
			f[2*r], f[2*r+1] = f16(x[0:]), f16(x[2:])
			var sc, m [8]uint8
			scalesK4((*[kScl]byte)(x[4:]), &sc, &m)
			for j := range 8 {
				s[8*r+j] = pair(int16(sc[j]))
				t[160+16*r+2*j], t[160+16*r+2*j+1] = m[j], 0
			}
		}
	}
}

// sideQ6KBytes is a Q6_K block's side table: 272 bytes from sideQ6K, then
// the four rows' quants, unpacked by the kernel.
const sideQ6KBytes = 272 + tileRows*qkK

// sideQ6K writes, per Q6_K block: each row's d as float32 and its sixteen
// signed sub-block scales as pairs.
func sideQ6K(dst, w []byte, stride, nb int) {
	for b := range nb {
		t := dst[sideQ6KBytes*b : sideQ6KBytes*b+272]
		f, s := f32s(t[:16]), i32s(t[16:272])
		for r := range tileRows {
			x := (*[210]byte)(w[r*stride+210*b:])
			f[r] = f16(x[208:])
			for g, v := range i8s(x[192:208]) {
				s[16*r+g] = pair(int16(v))
			}
		}
	}
}

// pack32Bytes is one packed block of a group of Q8_0 activation rows: the
// tileCols rows' 32 quants, then their scales as float32.
const pack32Bytes = tileCols * (32 + 4)

// pack32 packs one block of a group from Q8_0 activation blocks (34
// bytes: half scale, 32 quants); a nil block packs as zeros.
func pack32(dst []byte, src *[tileCols][]byte) {
	dst = dst[:pack32Bytes]
	scales := f32s(dst[tileCols*32:])
	for c, b := range src {
		if b == nil {
			clear(dst[32*c : 32*c+32])
			scales[c] = 0
			continue
		}
		copy(dst[32*c:32*c+32], b[2:34])
		scales[c] = f16(b[0:])
	}
}

// packKBytes is one packed block of a group of Q8_K activation rows: for
// each 16-element group, the tileCols rows' 16 quants; then per row the
// eight sums of two adjacent bsums as int16; then per row its scale four
// times.
const packKBytes = tileCols * (qkK + 16 + 16)

// packK packs one block of a group from Q8_K activation blocks (292
// bytes: float32 scale, 256 quants, 16 bsums); a nil block packs as zeros.
func packK(dst []byte, src *[tileCols][]byte) {
	dst = dst[:packKBytes]
	clear(dst)
	scales := f32s(dst[tileCols*(qkK+16):])
	for c, b := range src {
		if b == nil {
			continue
		}
		for g := range qkK / 16 {
			copy(dst[64*g+16*c:64*g+16*c+16], b[4+16*g:])
		}
		y := (*[292]byte)(b)
		for k := range 8 {
			s := uint16(bsum(y, 2*k) + bsum(y, 2*k+1))
			dst[qkK*tileCols+16*c+2*k], dst[qkK*tileCols+16*c+2*k+1] = byte(s), byte(s>>8)
		}
		for l := range 4 {
			scales[4*c+l] = f32(b[0:])
		}
	}
}

// packF32Bytes is one packed block of a group of float32 activation rows:
// the tileCols rows' 32 floats.
const packF32Bytes = tileCols * qk * 4

// packF32 packs one block of a group from float32 activation rows (128
// bytes each); a nil block packs as zeros.
func packF32(dst []byte, src *[tileCols][]byte) {
	for c, b := range src {
		d := dst[4*qk*c : 4*qk*(c+1)]
		if b == nil {
			clear(d)
			continue
		}
		copy(d, b)
	}
}
