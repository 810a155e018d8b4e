//go:build !purego

package quant

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/apr-llm/apr/tensor"
)

// hasVNNI selects the tiled kernels of gemm_amd64.s: AVX-512 (F, BW, VL)
// with VNNI, on top of the AVX2 row kernels whose sums they reproduce.
var hasVNNI = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW &&
	cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI

// A 32-element tile kernel multiplies tileRows weight rows (stride bytes
// apart, nb blocks each; wsc holds their block scales as float32, block by
// block) with groups packed groups at act, writing out[c*ostride+r].

//go:noescape
func q8_0TileVNNI(w *byte, stride int, wsc *float32, act *byte, groups, nb int, out *float32, ostride int)

//go:noescape
func q5_0TileVNNI(w *byte, stride int, wsc *float32, act *byte, groups, nb int, out *float32, ostride int)

type tile32Kernel func(w *byte, stride int, wsc *float32, act *byte, groups, nb int, out *float32, ostride int)

func init() {
	if !hasVNNI {
		return
	}
	tilers[tensor.Q8_0] = tiler32(q8_0TileVNNI, 34, 128)
	tilers[tensor.Q5_0] = tiler32(q5_0TileVNNI, 22, 16)
}

// pack32Bytes is one packed block of a group of Q8_0 activation rows: the
// tileCols rows' 32 quants, then per row the eight int32 lanes of -bias
// times the sums of four quants (the weights enter the kernel as unsigned
// bytes, biased by +bias), then per row its scale eight times.
const pack32Bytes = tileCols * (32 + 8*4 + 8*4)

// tiler32 is the tiler of a 32-element block type whose weight scale is
// the half at the start of its blockBytes-byte blocks and whose kernel
// takes weights biased by +bias.
func tiler32(k tile32Kernel, blockBytes int, bias int32) *tiler {
	return &tiler{
		blockElems: qk,
		blockBytes: blockBytes,
		packBytes:  pack32Bytes,
		pack: func(dst []byte, src *[tileCols][]byte) {
			pack32(dst, src, bias)
		},
		mul: func(w []byte, stride int, act []byte, groups, nb int, out []float32, ostride int) {
			var wsc [tileRows * maxTileBlocks]float32
			_ = w[(tileRows-1)*stride+nb*blockBytes-1]
			_ = act[groups*nb*pack32Bytes-1]
			_ = out[(groups*tileCols-1)*ostride+tileRows-1]
			for b := range nb {
				for r := range tileRows {
					wsc[tileRows*b+r] = f16(w[r*stride+b*blockBytes:])
				}
			}
			k(&w[0], stride, &wsc[0], &act[0], groups, nb, &out[0], ostride)
		},
	}
}

// pack32 packs one block of a group from Q8_0 activation blocks (34
// bytes: half scale, 32 quants); a nil block packs as zeros.
func pack32(dst []byte, src *[tileCols][]byte, bias int32) {
	dst = dst[:pack32Bytes]
	clear(dst)
	lanes := unsafe.Slice((*int32)(unsafe.Pointer(&dst[tileCols*32])), tileCols*8)
	scales := unsafe.Slice((*float32)(unsafe.Pointer(&dst[tileCols*64])), tileCols*8)
	for c, b := range src {
		if b == nil {
			continue
		}
		copy(dst[32*c:32*c+32], b[2:34])
		q := i8s(b[2:34])
		d := f16(b[0:])
		for l := range 8 {
			lanes[8*c+l] = -bias * (int32(q[4*l]) + int32(q[4*l+1]) + int32(q[4*l+2]) + int32(q[4*l+3]))
			scales[8*c+l] = d
		}
	}
}
