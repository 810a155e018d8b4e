//go:build !purego

#include "textflag.h"
#include "dot_amd64.h"

// AVX-512 VNNI dot-product kernels (EVEX VPDPBUSD/VPDPWSSD on ymm registers,
// so AVX512VL; byte masks, so AVX512BW). Each computes exactly the integer
// lanes of the AVX2 kernel of its type in dot_amd64.s (which are ggml's)
// and sums the floats in the same order, so its results are bit-identical
// to the AVX2 kernel's (and to the tiled prefill kernels of gemm_amd64.s,
// which reproduce them): only the speed changes.
//
// The 32-element kernels take rows four at a time: the activation block,
// its scale and its offset correction are loaded once for the four rows.
// VPDPBUSD multiplies unsigned by signed bytes, so a weight quant q - o
// (o = 128 for Q8_0 through a sign-bit flip, 16 for Q5_0, 8 for Q4_0) goes
// in as the unsigned q, and the accumulator starts at -o * (sums of four
// activation quants), which the activation block gives once for all rows.
//
// Every kernel prefetches the weights it reads next: the 32-element kernels
// the next group of four rows, the super-block kernels PF bytes ahead in
// their row (rows are contiguous, so the prefetch runs on into the next).

// PF is how far ahead of the super-block kernels' current block their
// prefetches run, in bytes.
#define PF 2048

// shufK4: entry i (32 bytes) broadcasts the int16 lane i of a vector of
// eight int16 in both 128-bit lanes (ggml's get_scale_shuffle_k4).
DATA shufK4<>+0(SB)/8, $0x0100010001000100
DATA shufK4<>+8(SB)/8, $0x0100010001000100
DATA shufK4<>+16(SB)/8, $0x0100010001000100
DATA shufK4<>+24(SB)/8, $0x0100010001000100
DATA shufK4<>+32(SB)/8, $0x0302030203020302
DATA shufK4<>+40(SB)/8, $0x0302030203020302
DATA shufK4<>+48(SB)/8, $0x0302030203020302
DATA shufK4<>+56(SB)/8, $0x0302030203020302
DATA shufK4<>+64(SB)/8, $0x0504050405040504
DATA shufK4<>+72(SB)/8, $0x0504050405040504
DATA shufK4<>+80(SB)/8, $0x0504050405040504
DATA shufK4<>+88(SB)/8, $0x0504050405040504
DATA shufK4<>+96(SB)/8, $0x0706070607060706
DATA shufK4<>+104(SB)/8, $0x0706070607060706
DATA shufK4<>+112(SB)/8, $0x0706070607060706
DATA shufK4<>+120(SB)/8, $0x0706070607060706
DATA shufK4<>+128(SB)/8, $0x0908090809080908
DATA shufK4<>+136(SB)/8, $0x0908090809080908
DATA shufK4<>+144(SB)/8, $0x0908090809080908
DATA shufK4<>+152(SB)/8, $0x0908090809080908
DATA shufK4<>+160(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+168(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+176(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+184(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+192(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+200(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+208(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+216(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+224(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA shufK4<>+232(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA shufK4<>+240(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA shufK4<>+248(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL shufK4<>(SB), RODATA|NOPTR, $256

// shufQ6: entry i (16 bytes) repeats byte 2i eight times, then byte 2i+1
// (ggml's get_scale_shuffle): the Q6_K scales of two sub-blocks of 16.
DATA shufQ6<>+0(SB)/8, $0x0000000000000000
DATA shufQ6<>+8(SB)/8, $0x0101010101010101
DATA shufQ6<>+16(SB)/8, $0x0202020202020202
DATA shufQ6<>+24(SB)/8, $0x0303030303030303
DATA shufQ6<>+32(SB)/8, $0x0404040404040404
DATA shufQ6<>+40(SB)/8, $0x0505050505050505
DATA shufQ6<>+48(SB)/8, $0x0606060606060606
DATA shufQ6<>+56(SB)/8, $0x0707070707070707
DATA shufQ6<>+64(SB)/8, $0x0808080808080808
DATA shufQ6<>+72(SB)/8, $0x0909090909090909
DATA shufQ6<>+80(SB)/8, $0x0a0a0a0a0a0a0a0a
DATA shufQ6<>+88(SB)/8, $0x0b0b0b0b0b0b0b0b
DATA shufQ6<>+96(SB)/8, $0x0c0c0c0c0c0c0c0c
DATA shufQ6<>+104(SB)/8, $0x0d0d0d0d0d0d0d0d
DATA shufQ6<>+112(SB)/8, $0x0e0e0e0e0e0e0e0e
DATA shufQ6<>+120(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL shufQ6<>(SB), RODATA|NOPTR, $128

// --- 32-element blocks, four rows at a time ---
//
// Registers: R8 the group's first row, R9 the stride, R10 four strides,
// R12 out, R13 rows left; SI, BX, DX, R14 the group's four rows and R11
// the offset of the current block in them (one index for all four rows),
// AX the next group (prefetched), DI the activation block, CX the pairs of
// blocks left. Y0-Y3 the rows' float sums, Y4 the activation quants, Y5
// their offset correction, Y6 their scale, Y13 zero, Y14 low-nibble mask,
// Y15 the offset bytes. The loop takes two blocks a step.

// ROWS4_BEGIN loads the arguments of
// func(w *byte, stride int, act *byte, nb int, out *float32, rows int)
// (rows a positive multiple of four, nb positive), sets Y15 to the offset
// byte o in every byte and K2 to the high eight words of a ymm.
#define ROWS4_BEGIN(o) \
	MOVQ w+0(FP), R8; \
	MOVQ stride+8(FP), R9; \
	MOVQ R9, R10; \
	SHLQ $2, R10; \
	MOVQ out+32(FP), R12; \
	MOVQ rows+40(FP), R13; \
	VPXOR Y13, Y13, Y13; \
	BCAST32(o, X15, Y15); \
	BCAST32(0x0f0f0f0f, X14, Y14); \
	MOVL $0xff00, AX; \
	KMOVD AX, K2

// GROUP4_BEGIN points at the next four rows, clears their sums and jumps
// to one if the block count is odd (the single block goes first).
#define GROUP4_BEGIN(one) \
	MOVQ R8, SI; \
	LEAQ (R8)(R9*1), BX; \
	LEAQ (R8)(R9*2), DX; \
	LEAQ (BX)(R9*2), R14; \
	LEAQ (R8)(R10*1), AX; \
	XORQ R11, R11; \
	MOVQ act+16(FP), DI; \
	MOVQ nb+24(FP), CX; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	SHRQ $1, CX; \
	JCS  one

// ACT32 loads the activation block at a(DI): its quants into Y4, -o times
// the sums of their groups of four into Y5, its scale into all lanes of Y6.
#define ACT32(a) \
	VMOVDQU (a+2)(DI), Y4; \
	VPXOR Y5, Y5, Y5; \
	VPDPBUSD Y4, Y15, Y5; \
	VPSUBD Y5, Y13, Y5; \
	VPBROADCASTW a(DI), X6; \
	VCVTPH2PS X6, Y6

// ROW32 adds f16(the block at d(P)(R11)) * f16(activation) * (lanes of
// q · y) to ACC, for the unsigned quants q in Y7 (ggml's
// acc = fmadd(d, q, acc)).
#define ROW32(P, d, ACC) \
	VMOVDQA Y5, Y8; \
	VPDPBUSD Y4, Y7, Y8; \
	VCVTDQ2PS Y8, Y8; \
	VPBROADCASTW d(P)(R11*1), X9; \
	VCVTPH2PS X9, Y9; \
	VMULPS Y6, Y9, Y9; \
	VFMADD231PS Y8, Y9, ACC

// BLOCK4 multiplies the block at offset d of the four rows (unpacked by U)
// with the activation block at a(DI).
#define BLOCK4(U, d, a) \
	ACT32(a); \
	U(SI, d); \
	ROW32(SI, d, Y0); \
	U(BX, d); \
	ROW32(BX, d, Y1); \
	U(DX, d); \
	ROW32(DX, d, Y2); \
	U(R14, d); \
	ROW32(R14, d, Y3)

// PAIR4 is one loop step over two blocks of size bytes: it prefetches the
// next group's bytes at the same place (8*size bytes from AX + 4*R11, by
// the macro PF), multiplies both blocks and loops while pairs remain.
#define PAIR4(U, size, PF, loop) \
	PF; \
	BLOCK4(U, 0, 0); \
	BLOCK4(U, size, 34); \
	ADDQ $(2*size), R11; \
	ADDQ $68, DI; \
	DECQ CX; \
	JNE  loop

// PREFETCH_3 and PREFETCH_5 prefetch three and five cache lines from
// AX + 4*R11.
#define PREFETCH_3 \
	PREFETCHT0 (AX)(R11*4); \
	PREFETCHT0 64(AX)(R11*4); \
	PREFETCHT0 128(AX)(R11*4)

#define PREFETCH_5 \
	PREFETCH_3; \
	PREFETCHT0 192(AX)(R11*4); \
	PREFETCHT0 256(AX)(R11*4)

// ONE4 multiplies the first block alone (odd block counts) and goes on
// with the pairs, if any.
#define ONE4(U, size, loop, end) \
	BLOCK4(U, 0, 0); \
	ADDQ $size, R11; \
	ADDQ $34, DI; \
	TESTQ CX, CX; \
	JNE  loop; \
	JMP  end

// GROUP4_END stores the four sums and moves to the next group.
#define GROUP4_END(group) \
	HSUM(Y0, X0, X8); \
	VMOVSS X0, (R12); \
	HSUM(Y1, X1, X8); \
	VMOVSS X1, 4(R12); \
	HSUM(Y2, X2, X8); \
	VMOVSS X2, 8(R12); \
	HSUM(Y3, X3, X8); \
	VMOVSS X3, 12(R12); \
	ADDQ $16, R12; \
	ADDQ R10, R8; \
	SUBQ $4, R13; \
	JNE  group; \
	VZEROUPPER; \
	RET

// Q80Q sets Y7 to the Q8_0 quants of the block at d(P)(R11) as unsigned
// bytes q + 128.
#define Q80Q(P, d) \
	VMOVDQU (d+2)(P)(R11*1), Y7; \
	VPXOR Y15, Y7, Y7

// NIBBLES sets Y7 to the 32 nibbles of the 16 bytes at a: low nibbles
// first, then high nibbles (the bytes in both halves, the high half
// shifted under the mask K2).
#define NIBBLES(a) \
	VBROADCASTI128 a, Y7; \
	VPSRLW $4, Y7, K2, Y7; \
	VPAND Y14, Y7, Y7

// Q50Q sets Y7 to the Q5_0 quants of the block at d(P)(R11) as unsigned
// bytes q + 16: the nibbles plus 16 where the block's bit is set.
#define Q50Q(P, d) \
	NIBBLES((d+6)(P)(R11*1)); \
	KMOVD (d+2)(P)(R11*1), K1; \
	VPADDB Y15, Y7, K1, Y7

// Q40Q sets Y7 to the Q4_0 quants of the block at d(P)(R11) as unsigned
// bytes q + 8.
#define Q40Q(P, d) \
	NIBBLES((d+2)(P)(R11*1))

// KERNEL4 is the body of a four-row kernel: unpacking macro U, blocks of
// size bytes, prefetch macro PF for a pair of blocks, and the kernel's
// labels.
#define KERNEL4(U, size, PF, group, one, loop, end) \
group: \
	GROUP4_BEGIN(one); \
loop: \
	PAIR4(U, size, PF, loop); \
end: \
	GROUP4_END(group); \
one: \
	ONE4(U, size, loop, end)

// func q8_0DotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)
TEXT ·q8_0DotRowsVNNI(SB), NOSPLIT, $0-48
	ROWS4_BEGIN(0x80808080)
	KERNEL4(Q80Q, 34, PREFETCH_5, q80group, q80one, q80loop, q80end)

// func q5_0DotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)
TEXT ·q5_0DotRowsVNNI(SB), NOSPLIT, $0-48
	ROWS4_BEGIN(0x10101010)
	KERNEL4(Q50Q, 22, PREFETCH_3, q50group, q50one, q50loop, q50end)

// func q4_0DotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)
TEXT ·q4_0DotRowsVNNI(SB), NOSPLIT, $0-48
	ROWS4_BEGIN(0x08080808)
	KERNEL4(Q40Q, 18, PREFETCH_3, q40group, q40one, q40loop, q40end)

// --- 256-element super-blocks with a Q8_K activation, row by row ---
//
// Registers: R11 the current row, R14 the stride, R12 out, R13 rows left,
// R8 the weight block, R10 the activation block, CX blocks left; Y11 the
// row's float sums (X10 the mins' sums for Q4_K/Q5_K), Y0 the block's
// int32 lanes, Y14 the low-nibble mask.

// SROWS_BEGIN loads the arguments of
// func(w *byte, stride int, act *byte, nb int, out *float32, rows int)
// (rows and nb positive).
#define SROWS_BEGIN \
	MOVQ w+0(FP), R11; \
	MOVQ stride+8(FP), R14; \
	MOVQ out+32(FP), R12; \
	MOVQ rows+40(FP), R13; \
	BCAST32(0x0f0f0f0f, X14, Y14)

// SROW_BEGIN starts a row.
#define SROW_BEGIN \
	MOVQ R11, R8; \
	MOVQ act+16(FP), R10; \
	MOVQ nb+24(FP), CX; \
	VXORPS Y11, Y11, Y11; \
	VXORPS X10, X10, X10

// PREFETCHK3 prefetches three cache lines PF bytes ahead of the block at
// R8.
#define PREFETCHK3 \
	PREFETCHT0 PF(R8); \
	PREFETCHT0 (PF+64)(R8); \
	PREFETCHT0 (PF+128)(R8)

// SNEXT advances to the next block (size bytes) and loops while blocks
// remain.
#define SNEXT(size, loop) \
	ADDQ $size, R8; \
	ADDQ $292, R10; \
	DECQ CX; \
	JNE  loop

// SROW_END stores T (the row's sum, xmm) and moves to the next row.
#define SROW_END(T, row) \
	VMOVSS T, (R12); \
	ADDQ $4, R12; \
	ADDQ R14, R11; \
	DECQ R13; \
	JNE  row; \
	VZEROUPPER; \
	RET

// KMINS_END leaves in X11 the row's sum as q4KDotAVX2 ends it: the eight
// lanes of Y11 (HSUM) less the four of X10 summed in pairs.
#define KMINS_END \
	HSUM(Y11, X11, X1); \
	VHADDPS X10, X10, X10; \
	VHADDPS X10, X10, X10; \
	VSUBSS X10, X11, X11

// kscl: KSCALESV's per-dword shift counts and masks.
DATA kscl<>+0(SB)/4, $0
DATA kscl<>+4(SB)/4, $0
DATA kscl<>+8(SB)/4, $0
DATA kscl<>+12(SB)/4, $4
DATA kscl<>+16(SB)/4, $0x3f3f3f3f
DATA kscl<>+20(SB)/4, $0x0f0f0f0f
DATA kscl<>+24(SB)/4, $0x3f3f3f3f
DATA kscl<>+28(SB)/4, $0x0f0f0f0f
DATA kscl<>+32(SB)/4, $0
DATA kscl<>+36(SB)/4, $0x30303030
DATA kscl<>+40(SB)/4, $0
DATA kscl<>+44(SB)/4, $0x30303030
GLOBL kscl<>(SB), RODATA|NOPTR, $48

// KSCALESV unpacks the twelve scale bytes a, b, c (dwords) at 4(R8) of a
// Q4_K/Q5_K block as ggml's utmp shuffle does, in vector registers:
// [a & 0x3f, (c & 0xf) | (a >> 6) << 4, b & 0x3f, (c >> 4) | (b >> 6) << 4]
// per byte. Y12 gets the eight scales as int16, then the eight mins
// (ggml's mins_and_scales), Y16 the scales in both 128-bit lanes.
// Clobbers X1, X2.
#define KSCALESV \
	VMOVDQU 4(R8), X12; \
	VPSHUFD $0x98, X12, X1; \
	VPSRLVD kscl<>+0(SB), X1, X1; \
	VPSHUFD $0x50, X12, X2; \
	VPSRLD $2, X2, X2; \
	VPAND kscl<>+32(SB), X2, X2; \
	VPTERNLOGD $0xEC, kscl<>+16(SB), X2, X1; \
	VPMOVZXBW X1, Y12; \
	VPERMQ $0x44, Y12, Y16

// KMINSR leaves m[j] * (bsums[2j] + bsums[2j+1]) summed in pairs in the
// four int32 lanes of X7, for the Q8_K block at R10 and the mins in the
// high half of Y12 (KMINSV with the mins in a register).
#define KMINSR \
	VMOVDQU 260(R10), Y7; \
	VEXTRACTI128 $1, Y7, X8; \
	VPHADDW X8, X7, X7; \
	VEXTRACTI128 $1, Y12, X9; \
	VPMADDWD X9, X7, X7

// K4SUB adds sc[j] * (lo · y) + sc[j+1] * (hi · y) into the int32 lanes of
// Y0 and Y17 (two chains of VPDPWSSD, summed by K4END), for the unsigned
// quants lo, hi (Y3, Y4), the Q8_K quants at ya and yb, and the scales'
// shuffle entries sa, sb. Clobbers Y1-Y4.
#define K4SUB(ya, yb, sa, sb) \
	VPSHUFB sa, Y16, Y1; \
	VPSHUFB sb, Y16, Y2; \
	VPMADDUBSW ya, Y3, Y3; \
	VPMADDUBSW yb, Y4, Y4; \
	VPDPWSSD Y1, Y3, Y0; \
	VPDPWSSD Y2, Y4, Y17

// K4BEGIN and K4END clear and sum the two int32 accumulators of K4SUB.
#define K4BEGIN \
	VPXOR Y0, Y0, Y0; \
	VPXORD Y17, Y17, Y17

#define K4END \
	VPADDD Y17, Y0, Y0

// Q4KQ sets Y3 and Y4 to the low and high nibbles of the 32 bytes at a.
#define Q4KQ(a) \
	VMOVDQU a, Y3; \
	VPSRLW $4, Y3, Y4; \
	VPAND Y14, Y3, Y3; \
	VPAND Y14, Y4, Y4

// func q4KDotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)
TEXT ·q4KDotRowsVNNI(SB), NOSPLIT, $0-48
	SROWS_BEGIN

q4kvrow:
	SROW_BEGIN

q4kvblock:
	PREFETCHK3
	KSCALESV
	K4BEGIN
	Q4KQ(16(R8))
	K4SUB(4(R10), 36(R10), shufK4<>+0(SB), shufK4<>+32(SB))
	Q4KQ(48(R8))
	K4SUB(68(R10), 100(R10), shufK4<>+64(SB), shufK4<>+96(SB))
	Q4KQ(80(R8))
	K4SUB(132(R10), 164(R10), shufK4<>+128(SB), shufK4<>+160(SB))
	Q4KQ(112(R8))
	K4SUB(196(R10), 228(R10), shufK4<>+192(SB), shufK4<>+224(SB))
	K4END
	KMINSR
	KFINISH
	SNEXT(144, q4kvblock)
	KMINS_END
	SROW_END(X11, q4kvrow)

// Q5KQ sets Y3 and Y4 to the 5-bit quants of the 32 bytes of nibbles at a
// with the fifth bits at bit b (low nibbles) and b+1 (high nibbles) of the
// 32 bytes in Y13: (nibble & 15) | (bit << 4). Y15 holds 0x10 bytes.
// Clobbers Y5, Y6.
#define Q5KQ(a, sl, sh, SHL, SHH) \
	VMOVDQU a, Y3; \
	VPSRLW $4, Y3, Y4; \
	SHL $sl, Y13, Y5; \
	SHH $sh, Y13, Y6; \
	VPAND Y15, Y5, Y5; \
	VPAND Y15, Y6, Y6; \
	VPTERNLOGD $0xEC, Y14, Y5, Y3; \
	VPTERNLOGD $0xEC, Y14, Y6, Y4

// Q5KFINISH adds the block to the row's sum in X11 as dotQ5KFast does in
// Go, one block at a time in float32: sum += d*yd*isum - dmin*yd*summs,
// for isum the sum of Y0's lanes and summs that of X7's (from KMINSR).
#define Q5KFINISH \
	MOVL (R8), AX; \
	VMOVD AX, X1; \
	VCVTPH2PS X1, X1; \
	VBROADCASTSS (R10), X2; \
	VMULPS X2, X1, X1; \
	VMOVSHDUP X1, X3; \
	HSUMI(Y0, X0, X2); \
	VCVTDQ2PS X0, X0; \
	VMULSS X0, X1, X1; \
	VPHADDD X7, X7, X7; \
	VPHADDD X7, X7, X7; \
	VCVTDQ2PS X7, X7; \
	VMULSS X7, X3, X3; \
	VSUBSS X3, X1, X1; \
	VADDSS X1, X11, X11

// func q5KDotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)
TEXT ·q5KDotRowsVNNI(SB), NOSPLIT, $0-48
	SROWS_BEGIN
	BCAST32(0x10101010, X15, Y15)

q5kvrow:
	SROW_BEGIN

q5kvblock:
	PREFETCHK3
	KSCALESV
	VMOVDQU 16(R8), Y13
	K4BEGIN
	Q5KQ(48(R8), 4, 3, VPSLLW, VPSLLW)
	K4SUB(4(R10), 36(R10), shufK4<>+0(SB), shufK4<>+32(SB))
	Q5KQ(80(R8), 2, 1, VPSLLW, VPSLLW)
	K4SUB(68(R10), 100(R10), shufK4<>+64(SB), shufK4<>+96(SB))
	Q5KQ(112(R8), 0, 1, VPSLLW, VPSRLW)
	K4SUB(132(R10), 164(R10), shufK4<>+128(SB), shufK4<>+160(SB))
	Q5KQ(144(R8), 2, 3, VPSRLW, VPSRLW)
	K4SUB(196(R10), 228(R10), shufK4<>+192(SB), shufK4<>+224(SB))
	K4END
	KMINSR
	Q5KFINISH
	SNEXT(176, q5kvblock)
	SROW_END(X11, q5kvrow)

// Q6SCALE sets Y (int16) to the Q6_K scales of shuffle entry e, sign-
// extended: eight lanes of one sub-block's scale, eight of the next.
#define Q6SCALE(e, X, Y) \
	VPSHUFB e, X12, X; \
	VPMOVSXBW X, Y

// Q6SUB adds sc * ((q - 32) · y) for the 32 quants in Q (0..63), the Q8_K
// quants at ya and the scales of shuffle entry e, into the int32 lanes of
// ACC (ggml: maddubs(q, y) - maddubs(32, y), madd with the scales).
// Y13 holds 32 in every byte. Clobbers Q, Y1, Y2.
#define Q6SUB(Q, ya, e, ACC) \
	VMOVDQU ya, Y1; \
	VPMADDUBSW Y1, Y13, Y2; \
	VPMADDUBSW Y1, Q, Q; \
	VPSUBW Y2, Q, Q; \
	Q6SCALE(e, X1, Y1); \
	VPDPWSSD Y1, Q, ACC

// Q6HALF adds the 128 quants of one half of a Q6_K block: low bits ql at
// R8+lo, high bits at R8+hi, Q8_K quants from R10+ya, scale shuffle entries
// from e, into Y0 and Y17. Y15 holds 0x30 bytes. Clobbers Y1-Y9.
#define Q6HALF(lo, hi, ya, e0, e1, e2, e3) \
	VMOVDQU lo(R8), Y3; \
	VMOVDQU (lo+32)(R8), Y4; \
	VMOVDQU hi(R8), Y9; \
	VPSRLW $4, Y3, Y5; \
	VPSRLW $4, Y4, Y6; \
	VPSLLW $4, Y9, Y7; \
	VPSLLW $2, Y9, Y8; \
	VPAND Y15, Y7, Y7; \
	VPAND Y15, Y8, Y8; \
	VPTERNLOGD $0xEC, Y14, Y7, Y3; \
	VPTERNLOGD $0xEC, Y14, Y8, Y4; \
	VPSRLW $2, Y9, Y8; \
	VPAND Y15, Y9, Y7; \
	VPAND Y15, Y8, Y8; \
	VPTERNLOGD $0xEC, Y14, Y7, Y5; \
	VPTERNLOGD $0xEC, Y14, Y8, Y6; \
	Q6SUB(Y3, ya(R10), e0, Y0); \
	Q6SUB(Y4, (ya+32)(R10), e1, Y17); \
	Q6SUB(Y5, (ya+64)(R10), e2, Y0); \
	Q6SUB(Y6, (ya+96)(R10), e3, Y17)

// func q6KDotRowsVNNI(w *byte, stride int, act *byte, nb int, out *float32, rows int)
TEXT ·q6KDotRowsVNNI(SB), NOSPLIT, $0-48
	SROWS_BEGIN
	BCAST32(0x20202020, X13, Y13)
	BCAST32(0x30303030, X15, Y15)

q6kvrow:
	SROW_BEGIN

q6kvblock:
	PREFETCHK3
	PREFETCHT0 (PF+192)(R8)
	VMOVDQU 192(R8), X12
	K4BEGIN
	Q6HALF(0, 128, 4, shufQ6<>+0(SB), shufQ6<>+16(SB), shufQ6<>+32(SB), shufQ6<>+48(SB))
	Q6HALF(64, 160, 132, shufQ6<>+64(SB), shufQ6<>+80(SB), shufQ6<>+96(SB), shufQ6<>+112(SB))
	K4END
	Q6FINISH
	SNEXT(210, q6kvblock)
	HSUM(Y11, X11, X1)
	SROW_END(X11, q6kvrow)
